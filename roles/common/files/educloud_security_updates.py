#!/usr/bin/python3
"""Security updates on this host: which are pending, since when, and what must restart (C10).

Installed by the educloud common role as /usr/local/sbin/educloud-security-updates. It uses
the standard library and Debian's python3-apt only, so a server needs no educloud package.

    educloud-security-updates observe
        this moment's pending security updates, as one JSON object; changes nothing
    educloud-security-updates record [--after-dpkg]
        the same, appended to RECORD when it differs from the record's last entry (apt's
        hooks run this: /etc/apt/apt.conf.d/99educloud-security-updates)
    educloud-security-updates restarts --owned REGEX...
        the services Debian's needrestart says still run replaced code, split into those the
        deployment restarts (a REGEX matches the whole unit name) and the others (JSON)

A security update is pending when an installed package has a newer version in an index
whose Release file says Origin: Debian, Label: Debian-Security and Codename: this release's
(bookworm-security), the origins the role gives unattended-upgrades. Every version apt knows
is compared, whatever pins or holds say: a held or pinned-away update is still pending.

The record is how the charter check (educloud.charter.security_updates) knows since when an
update has been pending: an entry is written after every list update, and after a dpkg run
whenever the last entry had something pending, but only when the answer changed.
"""

from __future__ import annotations

import argparse
import email.utils
import fcntl
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# educloud.charter.security_updates reads the record at this path.
RECORD = Path("/var/lib/educloud-security-updates/observations.jsonl")
# About ten years of entries at two list updates a day: an update pending since before the
# oldest kept entry has no known start, which the charter check counts as a failure.
KEEP_ENTRIES = 8000
OS_RELEASE = Path("/etc/os-release")
NEEDRESTART = "/usr/sbin/needrestart"
ORIGIN = "Debian"
LABEL = "Debian-Security"
_RELEASE_FIELD = re.compile(r"^(Origin|Label|Codename|Date):[ \t]*(.*?)[ \t]*$", re.MULTILINE)
_NEEDRESTART_LINE = re.compile(r"^NEEDRESTART-([A-Z]+):[ \t]*(.*?)[ \t]*$")
# Mappings needrestart ignores too (its default $nrconf{blacklist_mappings}): shared memory,
# devices, memfd and temporary files are not code a package update replaced.
_IGNORED_MAPPINGS = ("/dev/", "/memfd:", "/SYSV", "/tmp/", "/var/tmp/", "/run/", "/[aio]")  # noqa: S108


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def host_release(os_release: Path = OS_RELEASE) -> str:
    """This host's release codename (bookworm), from /etc/os-release."""
    for line in os_release.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME":
            return value.strip().strip('"')
    return ""


def is_security(origin: str, label: str, codename: str, release: str) -> bool:
    """An index of Debian's security archive for `release` (unattended-upgrades' default
    Origins-Pattern: origin=Debian, label=Debian-Security, codename <release>-security or,
    for old-style mirrors, <release>)."""
    return (
        origin == ORIGIN
        and label == LABEL
        and bool(release)
        and codename in (f"{release}-security", release)
    )


def release_fields(text: str) -> dict[str, str]:
    """Origin, Label, Codename and Date of a Release or (clearsigned) InRelease file."""
    signed = text.split("-----BEGIN PGP SIGNATURE-----", 1)[0]
    fields: dict[str, str] = {}
    for key, value in _RELEASE_FIELD.findall(signed):
        fields.setdefault(key, value)
    return fields


def _release_date(value: str) -> str:
    try:
        return stamp(email.utils.parsedate_to_datetime(value))
    except (TypeError, ValueError):
        return ""  # undated: the charter check cannot say how old the index is, and fails


def security_indexes(lists_dir: Path, release: str) -> dict[str, str]:
    """Each Release file apt holds for the security archive of `release`, to its Date (UTC,
    "" when it has none): when Debian published the index this host knows."""
    found: dict[str, str] = {}
    for path in sorted(lists_dir.iterdir()):
        if not (path.name.endswith("_InRelease") or path.name.endswith("_Release")):
            continue
        try:
            fields = release_fields(path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue
        if is_security(
            fields.get("Origin", ""), fields.get("Label", ""), fields.get("Codename", ""), release
        ):
            found[path.name] = _release_date(fields.get("Date", ""))
    return found


def pending_updates(
    packages: Iterable[Any], compare: Callable[[str, str], int], release: str
) -> dict[str, dict[str, str]]:
    """Each installed package with a newer version in a security index, to its installed
    version and the newest such version. `packages` are apt_pkg.Package objects (or alike):
    every version apt knows is looked at, so pins and holds change nothing."""
    found: dict[str, dict[str, str]] = {}
    for package in packages:
        installed = package.current_ver
        if installed is None:
            continue
        newest: str | None = None
        for version in package.version_list:
            if compare(version.ver_str, installed.ver_str) <= 0:
                continue
            if newest is not None and compare(version.ver_str, newest) <= 0:
                continue
            if any(
                is_security(index.origin, index.label, index.codename, release)
                for index, _ in version.file_list
            ):
                newest = version.ver_str
        if newest is not None:
            # pretty: the bare name for this host's architecture, name:arch for another.
            name = package.get_fullname(True)
            found[name] = {"installed": installed.ver_str, "security": newest}
    return found


def observe() -> dict[str, Any]:
    """This moment's observation: when, the security indexes' dates, what is pending."""
    import apt_pkg  # type: ignore[import-not-found]  # python3-apt, on the servers only

    apt_pkg.init()
    cache = apt_pkg.Cache(None)  # None: no progress lines on stdout
    release = host_release()
    lists_dir = Path(apt_pkg.config.find_dir("Dir::State::lists"))
    return {
        "at": stamp(datetime.now(UTC)),
        "release": release,
        "indexes": security_indexes(lists_dir, release),
        "pending": pending_updates(cache.packages, apt_pkg.version_compare, release),
    }


def last_entry(lines: Sequence[str]) -> dict[str, Any] | None:
    """The record's last readable entry."""
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            return entry
    return None


def _read_lines(record: Path) -> list[str]:
    try:
        return record.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def needs_entry_after_dpkg(record: Path) -> bool:
    """After a dpkg run, only an entry that listed pending updates can have changed (an
    update installed); a new install gets the newest version. A downgrade outside this
    rule shows to the charter check as an update the record does not list, which fails."""
    last = last_entry(_read_lines(record))
    return last is None or bool(last.get("pending"))


def append(record: Path, entry: Mapping[str, Any], keep: int = KEEP_ENTRIES) -> bool:
    """Add `entry` to the record unless its indexes and pending updates are the last entry's;
    keep the newest `keep` entries. True when written."""
    record.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    with open(record.parent / ".lock", "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lines = _read_lines(record)
        last = last_entry(lines)
        if last is not None and (last.get("indexes"), last.get("pending")) == (
            entry.get("indexes"),
            entry.get("pending"),
        ):
            return False
        lines.append(json.dumps(entry, sort_keys=True, separators=(",", ":")))
        descriptor, staged = tempfile.mkstemp(dir=record.parent, prefix=".observations.")
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write("\n".join(lines[-keep:]) + "\n")
        os.chmod(staged, 0o644)
        os.replace(staged, record)
    return True


def parse_needrestart(text: str) -> dict[str, Any]:
    """needrestart's batch output (-b, the apt-dater protocol of its README.batch.md):
    services, user sessions, containers, and the kernel's status (KSTA: 0 unknown, 1 current,
    2 ABI-compatible upgrade pending, 3 version upgrade pending)."""
    found: dict[str, Any] = {
        "services": [],
        "sessions": [],
        "containers": [],
        "kernel": {"status": 0},
    }
    for line in text.splitlines():
        match = _NEEDRESTART_LINE.match(line)
        if not match:
            continue
        key, value = match.groups()
        if key == "SVC":
            found["services"].append(value)
        elif key == "SESS":
            found["sessions"].append(value)
        elif key == "CONT":
            found["containers"].append(value)
        elif key == "KSTA":
            found["kernel"]["status"] = int(value) if value.isdigit() else 0
        elif key == "KCUR":
            found["kernel"]["running"] = value
        elif key == "KEXP":
            found["kernel"]["expected"] = value
    return found


def runs_replaced_code(maps: str, executable: str) -> bool:
    """Whether a process runs a deleted executable, or maps as executable a file since
    deleted (what a package update does to the libraries it replaces)."""
    if executable.endswith(" (deleted)"):
        return True
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or "x" not in fields[1]:
            continue
        path = fields[5]
        deleted = path.startswith("/") and path.endswith(" (deleted)")
        if deleted and not path.startswith(_IGNORED_MAPPINGS):
            return True
    return False


def _unit_main_process(unit: str) -> tuple[str, bool]:
    """A unit's KillMode, and whether its main process runs replaced code."""
    shown = subprocess.run(
        ["systemctl", "show", "--property=KillMode", "--property=MainPID", unit],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    properties = dict(line.partition("=")[::2] for line in shown.splitlines())
    pid = properties.get("MainPID", "0")
    if not pid.isdigit() or pid == "0":
        return properties.get("KillMode", ""), True
    try:
        maps = Path(f"/proc/{pid}/maps").read_text(encoding="utf-8", errors="replace")
        executable = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return properties.get("KillMode", ""), True
    return properties.get("KillMode", ""), runs_replaced_code(maps, executable)


def sort_restarts(
    services: Sequence[str],
    owned: Sequence[str],
    main_process: Callable[[str], tuple[str, bool]],
) -> dict[str, list[str]]:
    """Which of needrestart's services the deployment restarts: those an `owned` regular
    expression matches whole. A unit whose restart leaves its other processes running
    (KillMode=process: sshd keeps its connections) and whose main process already runs the
    new code is listed for the processes left behind (SSH sessions), not restarted again,
    so that a second deploy changes nothing."""
    patterns = [re.compile(pattern) for pattern in owned]
    restart: list[str] = []
    left_behind: list[str] = []
    others: list[str] = []
    for service in services:
        if not any(pattern.fullmatch(service) for pattern in patterns):
            others.append(service)
            continue
        kill_mode, main_replaced = main_process(service)
        if kill_mode == "process" and not main_replaced:
            left_behind.append(service)
        else:
            restart.append(service)
    return {"restart": restart, "left_behind": left_behind, "others": others}


def restarts(owned: Sequence[str]) -> dict[str, Any]:
    # Batch mode lists and never restarts anything (needrestart's README.batch.md).
    if not Path(NEEDRESTART).is_file():
        raise OSError(f"{NEEDRESTART} is missing (the common role installs needrestart)")
    answer = subprocess.run(
        [NEEDRESTART, "-b"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    )
    found = parse_needrestart(answer.stdout)
    return {**found, **sort_restarts(found["services"], owned, _unit_main_process)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="educloud-security-updates",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("observe", help="print the pending security updates (JSON)")
    record = commands.add_parser("record", help="append them to the record if they changed")
    record.add_argument("--after-dpkg", action="store_true", help="as apt's DPkg hook")
    restart = commands.add_parser("restarts", help="services that run replaced code (JSON)")
    restart.add_argument("--owned", nargs="*", default=[], metavar="REGEX")
    options = parser.parse_args(argv)
    try:
        if options.command == "observe":
            print(json.dumps(observe(), sort_keys=True))
        elif options.command == "record":
            if not options.after_dpkg or needs_entry_after_dpkg(RECORD):
                append(RECORD, observe())
        else:
            print(json.dumps(restarts(options.owned), sort_keys=True))
    # SystemError: apt_pkg's errors (a broken list, an unreadable status file).
    except (OSError, SystemError, subprocess.CalledProcessError, re.error) as error:
        print(f"educloud-security-updates: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
