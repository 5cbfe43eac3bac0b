"""Debian's Lynis run inside a lab host, never installed there (issue #26).

Lynis is the hardening audit an academy's security officer runs first. The lab measures
each host with Debian's own package, as that officer would: the package is downloaded on
the controller (`apt-get download`), unpacked (`dpkg-deb -x`), copied into the host's /tmp
and run from there (`--usecwd`: Lynis then finds its include files, plugins and profile in
its working folder), and removed afterwards. Nothing is installed on the host, so the
measurement does not change what it measures.

The hardening index is Lynis's own figure (`hardening_index=` of its report:
`include/report` of Lynis 3.0.8, the version of Debian 12). Points are attributed to each
test from its log ("Performing test ID ..." then "Hardening: assigned ..."), so that a
report can say where the index loses points.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# Lynis's own settings beside Debian's default.prf; no test is skipped.
CUSTOM_PROFILE = "# educloud: measure without changing the host\nrefresh-repositories=no\n"
# What a run leaves in its folder on the host (a fresh `mktemp -d`, removed after).
REPORT_FILE = "report.dat"
LOG_FILE = "lynis.log"

_TEST_ID = re.compile(r"Performing test ID (?P<test>[A-Z]+-\d+)")
_POINTS = re.compile(
    r"Hardening: assigned (?:maximum number of hardening points for this item "
    r"\((?P<max>\d+)\)|partial number of hardening points \((?P<got>\d+) of (?P<of>\d+)\))"
)


class LynisError(RuntimeError):
    """Lynis could not be obtained or run, or its report cannot be read."""


@dataclass
class LynisResult:
    """What one Lynis run says about a host."""

    hardening_index: int
    warnings: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    # Tests that broke inside Lynis itself (ReportException): their points are not counted.
    exceptions: list[str] = field(default_factory=list)
    # Test id -> [points earned, points possible], summed over the test's AddHP calls.
    points: dict[str, list[int]] = field(default_factory=dict)

    @property
    def earned(self) -> int:
        return sum(got for got, _ in self.points.values())

    @property
    def possible(self) -> int:
        return sum(of for _, of in self.points.values())

    def lost(self) -> list[tuple[str, int, int]]:
        """(test, earned, possible) of every test that did not earn all its points, the
        largest loss first."""
        rows = [(test, got, of) for test, (got, of) in self.points.items() if got < of]
        return sorted(rows, key=lambda row: (row[1] - row[2], row[0]))


def parse_report(report: str, log: str = "") -> LynisResult:
    """The result of a run from the text of its report file and (optionally) its log."""
    index: int | None = None
    warnings: list[str] = []
    suggestions: list[str] = []
    exceptions: list[str] = []
    for line in report.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "hardening_index":
            try:
                index = int(value)
            except ValueError as error:
                raise LynisError(
                    f"the report's hardening_index is not a number: {value!r}"
                ) from error
        elif key == "warning[]":
            warnings.append(value)
        elif key == "suggestion[]":
            suggestions.append(value)
        elif key == "exception_event[]":
            exceptions.append(value)
    if index is None:
        raise LynisError("the report has no hardening_index: did Lynis finish its audit?")
    return LynisResult(index, warnings, suggestions, exceptions, parse_points(log))


def parse_points(log: str) -> dict[str, list[int]]:
    """Test id -> [earned, possible] from a Lynis log."""
    points: dict[str, list[int]] = {}
    test = "(none)"
    for line in log.splitlines():
        started = _TEST_ID.search(line)
        if started:
            test = started["test"]
            continue
        assigned = _POINTS.search(line)
        if not assigned:
            continue
        if assigned["max"] is not None:
            got = of = int(assigned["max"])
        else:
            got, of = int(assigned["got"]), int(assigned["of"])
        tally = points.setdefault(test, [0, 0])
        tally[0] += got
        tally[1] += of
    return points


@contextmanager
def unpacked_package(deb: Path | None = None) -> Iterator[Path]:
    """A folder laid out for `lynis --usecwd`: the script, include/, db/, plugins/ and
    default.prf of Debian's package (`deb`, or the one `apt-get download lynis` fetches)."""
    with tempfile.TemporaryDirectory(prefix="educloud-lynis-") as tmp:
        work = Path(tmp)
        if deb is None:
            fetched = subprocess.run(
                ["apt-get", "download", "lynis"],
                cwd=work,
                capture_output=True,
                text=True,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            debs = sorted(work.glob("lynis_*.deb"))
            if fetched.returncode != 0 or not debs:
                raise LynisError(
                    "apt-get download lynis failed on the controller: "
                    + (fetched.stderr.strip() or "no package downloaded")
                )
            deb = debs[0]
        tree = work / "tree"
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True, capture_output=True)
        share = tree / "usr/share/lynis"
        run = work / "run"
        run.mkdir()
        for name in ("include", "db"):
            shutil.copytree(share / name, run / name)
        shutil.copytree(tree / "etc/lynis/plugins", run / "plugins")
        shutil.copy2(tree / "etc/lynis/default.prf", run / "default.prf")
        shutil.copy2(tree / "usr/sbin/lynis", run / "lynis")
        # Debian's profile refreshes the package lists (apt-get update) before PKGS-7392:
        # the measurement would change the host. The lists are the deploy's own.
        (run / "custom.prf").write_text(CUSTOM_PROFILE, encoding="utf-8")
        yield run


def package_archive(run: Path) -> bytes:
    """The folder of `unpacked_package` as a tar stream, owned by root (Lynis refuses
    include files that another account could have changed)."""
    buffer = io.BytesIO()

    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mode &= 0o755
        return info

    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(run, arcname=".", filter=as_root)
    return buffer.getvalue()


def audit_command(folder: str) -> str:
    """The shell command that runs the audit from `folder` on the host."""
    return (
        f"cd {folder} && sh ./lynis audit system --usecwd --quick --no-colors"
        f" --logfile {folder}/{LOG_FILE} --report-file {folder}/{REPORT_FILE} > /dev/null"
    )


def audit(ssh: list[str], archive: bytes, timeout: float = 900) -> LynisResult:
    """Copy the unpacked package to a host through `ssh` (an argv that runs its last
    argument there), run the audit, read its report and log, and remove every file the run
    left. Raises LynisError when any step fails."""

    def remote(command: str, data: bytes | None = None) -> str:
        done = subprocess.run(
            [*ssh, command],
            input=data,
            capture_output=True,
            check=False,
            timeout=timeout,
            stdin=None if data is not None else subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise LynisError(
                f"{command.split()[0]}... failed on the host (rc {done.returncode}): "
                + done.stderr.decode(errors="replace").strip()[-500:]
            )
        return done.stdout.decode(errors="replace")

    folder = remote("mktemp -d /tmp/educloud-lynis.XXXXXXXX").strip()
    if not folder.startswith("/tmp/educloud-lynis."):  # noqa: S108 - mktemp's own folder
        raise LynisError(f"mktemp gave an unexpected folder: {folder!r}")
    try:
        remote(f"tar -C {folder} -xf -", archive)
        remote(audit_command(folder))
        report = remote(f"cat {folder}/{REPORT_FILE}")
        log = remote(f"cat {folder}/{LOG_FILE}")
    finally:
        remote(f"rm -rf {folder}")
    return parse_report(report, log)
