"""Security updates on the hosts (C10): the host tool (roles/common/files/
educloud_security_updates.py) and the charter check's evaluation
(educloud.charter.security_updates), fed good and broken inputs.

The tool's apt part runs against fake apt_pkg objects (python3-apt is not in the venv); its
pure parts (Release files, needrestart's batch output, /proc maps, the record) and the
evaluation (since when an update waits, what makes that unknown) need nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import types
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from educloud import policy
from educloud.charter import security_updates
from educloud.paths import policies_dir, repo_root
from educloud.policy import PolicyError

tool = security_updates.load_tool()

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
SECURITY_INDEX = "deb.debian.org_debian-security_dists_bookworm-security_InRelease"
INRELEASE = """-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

Origin: Debian
Label: Debian-Security
Suite: oldstable-security
Version: 12
Codename: bookworm-security
Date: Fri, 04 Dec 2026 03:54:28 UTC
Valid-Until: Fri, 11 Dec 2026 03:54:28 UTC
Acquire-By-Hash: yes
Components: updates/main updates/contrib
Description: Debian 12 - Security Updates
SHA256:
 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855        0 contrib/Contents-amd64
-----BEGIN PGP SIGNATURE-----

iQIzBAEBCAAdFiEE
-----END PGP SIGNATURE-----
"""
MAIN_RELEASE = INRELEASE.replace("Label: Debian-Security", "Label: Debian").replace(
    "Codename: bookworm-security", "Codename: bookworm"
)


# --- the host tool: which updates are pending ------------------------------------------


def test_release_fields_read_the_signed_part_only() -> None:
    fields = tool.release_fields(INRELEASE + "Date: Mon, 01 Jan 2001 00:00:00 UTC\n")
    assert fields == {
        "Origin": "Debian",
        "Label": "Debian-Security",
        "Codename": "bookworm-security",
        "Date": "Fri, 04 Dec 2026 03:54:28 UTC",
    }


@pytest.mark.parametrize(
    ("origin", "label", "codename", "expected"),
    [
        ("Debian", "Debian-Security", "bookworm-security", True),
        ("Debian", "Debian-Security", "bookworm", True),  # an old-style security mirror
        ("Debian", "Debian", "bookworm", False),  # the main archive's point releases
        ("Debian", "Debian-Security", "trixie-security", False),  # another release's
        ("Someone", "Debian-Security", "bookworm-security", False),  # not Debian's
    ],
)
def test_only_debian_security_for_this_release_counts(
    origin: str, label: str, codename: str, expected: bool
) -> None:
    assert tool.is_security(origin, label, codename, "bookworm") is expected
    assert tool.is_security(origin, label, codename, "") is False


def test_security_indexes_are_dated_from_their_release_file(tmp_path: Path) -> None:
    (tmp_path / SECURITY_INDEX).write_text(INRELEASE)
    (tmp_path / "deb.debian.org_debian_dists_bookworm_InRelease").write_text(MAIN_RELEASE)
    (
        tmp_path
        / "deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages"
    ).write_text("Origin: Debian\nLabel: Debian-Security\nCodename: bookworm-security\n")
    (tmp_path / "_srv_repo_._Release").write_text(
        "Origin: Debian\nLabel: Debian-Security\nCodename: bookworm-security\nDate: soon\n"
    )
    assert tool.security_indexes(tmp_path, "bookworm") == {
        SECURITY_INDEX: "2026-12-04T03:54:28Z",
        "_srv_repo_._Release": "",  # undated: the check fails on it
    }


@dataclass
class FakeIndex:
    origin: str
    label: str
    codename: str


SECURITY = FakeIndex("Debian", "Debian-Security", "bookworm-security")
MAIN = FakeIndex("Debian", "Debian", "bookworm")
STATUS = FakeIndex("", "", "now")


@dataclass
class FakeVersion:
    ver_str: str
    indexes: list[FakeIndex] = field(default_factory=list)

    @property
    def file_list(self) -> list[tuple[FakeIndex, int]]:
        return [(index, 0) for index in self.indexes]


@dataclass
class FakePackage:
    name: str
    current_ver: FakeVersion | None
    version_list: list[FakeVersion]

    def get_fullname(self, pretty: bool = False) -> str:
        return self.name


def _compare(a: str, b: str) -> int:
    return (a > b) - (a < b)  # enough for these versions


def _package(name: str, installed: str | None, *versions: FakeVersion) -> FakePackage:
    current = FakeVersion(installed, [STATUS]) if installed else None
    return FakePackage(name, current, [*versions, *([current] if current else [])])


PACKAGES = [
    # Held or pinned away, it is still pending: every version is compared.
    _package("libexpat1", "2.5.0-1", FakeVersion("2.5.0-1+deb12u1", [SECURITY])),
    # The newest is in the main archive only; an older security one is still newer than installed.
    _package(
        "openssl",
        "3.0.11-1",
        FakeVersion("3.0.13-1", [MAIN]),
        FakeVersion("3.0.12-1", [SECURITY]),
    ),
    _package("curl", "7.88.1-10", FakeVersion("7.88.1-10", [MAIN, SECURITY])),  # up to date
    _package("tzdata", "2024a-0", FakeVersion("2024b-0", [MAIN])),  # not a security update
    _package("nginx", None, FakeVersion("1.22.1-9+deb12u1", [SECURITY])),  # not installed
]


def test_pending_updates_compare_every_version_apt_knows() -> None:
    assert tool.pending_updates(PACKAGES, _compare, "bookworm") == {
        "libexpat1": {"installed": "2.5.0-1", "security": "2.5.0-1+deb12u1"},
        "openssl": {"installed": "3.0.11-1", "security": "3.0.12-1"},
    }


def test_observe_reads_apt_through_python_apt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / SECURITY_INDEX).write_text(INRELEASE)
    os_release = tmp_path / "os-release"
    os_release.write_text(
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\n'
    )
    fake = types.ModuleType("apt_pkg")
    fake.init = lambda: None  # type: ignore[attr-defined]
    fake.Cache = lambda progress: types.SimpleNamespace(packages=PACKAGES)  # type: ignore[attr-defined]
    fake.version_compare = _compare  # type: ignore[attr-defined]
    fake.config = types.SimpleNamespace(find_dir=lambda key: str(lists))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "apt_pkg", fake)
    monkeypatch.setattr(tool, "OS_RELEASE", os_release)
    monkeypatch.setattr(tool.host_release, "__defaults__", (os_release,))
    seen = tool.observe()
    assert seen["release"] == "bookworm"
    assert seen["indexes"] == {SECURITY_INDEX: "2026-12-04T03:54:28Z"}
    assert set(seen["pending"]) == {"libexpat1", "openssl"}
    observed = security_updates.parse_observation(json.loads(json.dumps(seen)))
    assert observed.pending["libexpat1"].security == "2.5.0-1+deb12u1"


# --- the host tool: the record ---------------------------------------------------------


def _entry(
    at: str, pending: dict[str, Any], indexes: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "at": at,
        "indexes": {SECURITY_INDEX: "2026-12-04T03:54:28Z"} if indexes is None else indexes,
        "pending": pending,
        "release": "bookworm",
    }


EXPAT = {"libexpat1": {"installed": "2.5.0-1", "security": "2.5.0-1+deb12u1"}}


def test_record_appends_only_what_changed_and_keeps_the_newest(tmp_path: Path) -> None:
    record = tmp_path / "state" / "observations.jsonl"
    assert tool.append(record, _entry("2026-12-01T06:00:00Z", {}))
    assert not tool.append(record, _entry("2026-12-01T18:00:00Z", {}))  # same answer
    assert tool.append(record, _entry("2026-12-02T06:00:00Z", EXPAT))
    assert tool.append(record, _entry("2026-12-02T07:00:00Z", {}), keep=2)
    lines = record.read_text().splitlines()
    assert [json.loads(line)["at"] for line in lines] == [
        "2026-12-02T06:00:00Z",
        "2026-12-02T07:00:00Z",
    ]
    assert oct(record.stat().st_mode & 0o777) == "0o644"


def test_after_dpkg_an_entry_is_needed_only_when_something_was_pending(tmp_path: Path) -> None:
    record = tmp_path / "observations.jsonl"
    assert tool.needs_entry_after_dpkg(record)  # no record yet: start it
    tool.append(record, _entry("2026-12-01T06:00:00Z", EXPAT))
    assert tool.needs_entry_after_dpkg(record)  # an update may just have been installed
    tool.append(record, _entry("2026-12-01T07:00:00Z", {}))
    assert not tool.needs_entry_after_dpkg(record)
    record.write_text(record.read_text() + "not json\n")
    assert not tool.needs_entry_after_dpkg(record)  # the last readable entry decides


# --- the host tool: needrestart --------------------------------------------------------

NEEDRESTART_BATCH = """\
NEEDRESTART-VER: 3.6
NEEDRESTART-KCUR: 6.1.0-28-amd64
NEEDRESTART-KEXP: 6.1.0-31-amd64
NEEDRESTART-KSTA: 3
NEEDRESTART-SVC: cron.service
NEEDRESTART-SVC: nginx.service
NEEDRESTART-SVC: ssh.service
NEEDRESTART-SVC: php8.2-fpm.service
NEEDRESTART-CONT: LXC web1
NEEDRESTART-SESS: root @ session #28017
"""


def test_needrestart_batch_output_is_parsed() -> None:
    found = tool.parse_needrestart(NEEDRESTART_BATCH + "Scanning processes...\n")
    assert found["services"] == [
        "cron.service",
        "nginx.service",
        "ssh.service",
        "php8.2-fpm.service",
    ]
    assert found["kernel"] == {
        "running": "6.1.0-28-amd64",
        "expected": "6.1.0-31-amd64",
        "status": 3,
    }
    assert found["sessions"] == ["root @ session #28017"]
    assert found["containers"] == ["LXC web1"]
    nothing = tool.parse_needrestart("NEEDRESTART-VER: 3.6\n")
    assert nothing["services"] == []
    assert nothing["kernel"] == {"status": 0}  # 0: unknown, as needrestart says in a container


MAPS_FRESH = """\
55d0c0a00000-55d0c0a2b000 r--p 00000000 fe:01 1837 /usr/sbin/sshd
55d0c0a2b000-55d0c0ab5000 r-xp 0002b000 fe:01 1837 /usr/sbin/sshd
7f1c2a000000-7f1c2a200000 r-xp 00000000 fe:01 2211 /usr/lib/x86_64-linux-gnu/libcrypto.so.3
7f1c2b000000-7f1c2b001000 rw-s 00000000 00:01 4096 /SYSV0052e2c1 (deleted)
7f1c2c000000-7f1c2c001000 r-xp 00000000 00:01 4097 /memfd:jit (deleted)
7f1c2d000000-7f1c2d001000 r--p 00000000 fe:01 2212 /usr/share/zoneinfo/UTC (deleted)
"""
MAPS_REPLACED = MAPS_FRESH.replace("libcrypto.so.3", "libcrypto.so.3 (deleted)")


def test_replaced_code_is_an_executable_mapping_of_a_deleted_file() -> None:
    assert not tool.runs_replaced_code(MAPS_FRESH, "/usr/sbin/sshd")
    assert tool.runs_replaced_code(MAPS_REPLACED, "/usr/sbin/sshd")
    assert tool.runs_replaced_code(MAPS_FRESH, "/usr/sbin/sshd (deleted)")


def test_restarts_are_the_owned_units_and_not_what_a_restart_leaves_behind() -> None:
    owned = [r"ssh\.service", r"nginx\.service", r"php[0-9.]+-fpm\.service"]
    main_process = {
        # sshd restarted already: only the connections it keeps (KillMode=process) are old.
        "ssh.service": ("process", False),
        "nginx.service": ("mixed", False),  # needrestart saw a worker: restart the whole unit
        "php8.2-fpm.service": ("control-group", True),
    }
    sorted_ = tool.sort_restarts(
        tool.parse_needrestart(NEEDRESTART_BATCH)["services"], owned, main_process.__getitem__
    )
    assert sorted_ == {
        "restart": ["nginx.service", "php8.2-fpm.service"],
        "left_behind": ["ssh.service"],
        "others": ["cron.service"],
    }
    main_process["ssh.service"] = ("process", True)  # sshd itself runs the old library
    assert (
        "ssh.service"
        in tool.sort_restarts(["ssh.service"], owned, main_process.__getitem__)["restart"]
    )
    # A pattern matches the whole name: nginx.service does not own nginx-debug.service.
    assert tool.sort_restarts(["nginx-debug.service"], owned, main_process.__getitem__)["others"]


def test_the_roles_defaults_name_units_the_stack_runs() -> None:
    defaults = yaml.safe_load((repo_root() / "roles/common/defaults/main.yml").read_text())
    owned = defaults["common_security_updates_restart_units"]
    services = [
        "ssh.service",
        "postgresql@15-main.service",
        "php8.2-fpm.service",
        "keycloak.service",
    ]
    never = ["patroni.service", "etcd.service", "redis-sentinel.service", "dbus.service"]
    sorted_ = tool.sort_restarts(services + never, owned, lambda unit: ("control-group", True))
    assert sorted_["restart"] == services
    assert sorted_["others"] == never


def test_the_role_and_the_check_use_the_tools_paths() -> None:
    variables = yaml.safe_load((repo_root() / "roles/common/vars/main.yml").read_text())
    assert variables["common_security_updates_record"] == security_updates.record_path()
    assert variables["common_security_updates_tool"] == "/usr/local/sbin/educloud-security-updates"


@pytest.mark.skipif(shutil.which("python3") is None, reason="no python3")
def test_the_tool_runs_as_the_check_sends_it() -> None:
    """`python3 -c SOURCE ...`, as the charter check runs it on a host."""
    done = subprocess.run(
        ["python3", "-c", security_updates.tool_source(), "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "observe" in done.stdout


# --- the charter check's evaluation ----------------------------------------------------


def _observation(
    at: datetime, pending: dict[str, Any], indexes: dict[str, str] | None = None
) -> Any:
    return security_updates.parse_observation(
        _entry(at.strftime("%Y-%m-%dT%H:%M:%SZ"), pending, indexes)
    )


def _assess(live: Any, record: list[Any], days: int = 7) -> Any:
    return security_updates.assess(live, record, max_pending_days=days, now=NOW)


def _days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def test_nothing_pending_and_a_kept_record_passes() -> None:
    live = _observation(NOW, {})
    found = _assess(live, [_observation(_days_ago(30), {}), _observation(_days_ago(1), {})])
    assert found.problems == ()
    assert found.oldest_index == datetime(2026, 12, 4, 3, 54, 28, tzinfo=UTC)


def test_an_update_waiting_past_the_period_fails_naming_it() -> None:
    record = [
        _observation(_days_ago(11), {}),  # proves it was not pending then
        _observation(_days_ago(10), EXPAT),
        _observation(_days_ago(3), EXPAT, {SECURITY_INDEX: "2026-12-04T03:54:28Z"}),
    ]
    found = _assess(_observation(NOW, EXPAT), record)
    assert found.problems == (
        "libexpat1 2.5.0-1 (Debian-Security has 2.5.0-1+deb12u1) pending for 10 days "
        "(first seen 2026-11-26 12:00 UTC), more than the 7 days the policy allows",
    )
    assert found.waiting[0].days == pytest.approx(10)
    assert not _assess(_observation(NOW, EXPAT), record, days=14).problems


def test_a_newer_security_version_does_not_reset_the_wait() -> None:
    newer = {"libexpat1": {"installed": "2.5.0-1", "security": "2.5.0-1+deb12u2"}}
    record = [
        _observation(_days_ago(11), {}),
        _observation(_days_ago(10), EXPAT),
        _observation(_days_ago(1), newer),
    ]
    assert "pending for 10 days" in _assess(_observation(NOW, newer), record).problems[0]


def test_an_update_installed_then_pending_again_waits_from_its_return() -> None:
    record = [
        _observation(_days_ago(20), EXPAT),
        _observation(_days_ago(19), {}),
        _observation(_days_ago(2), EXPAT),
    ]
    found = _assess(_observation(NOW, EXPAT), record)
    assert found.problems == ()
    assert found.waiting[0].days == pytest.approx(2)


@pytest.mark.parametrize(
    ("record", "why"),
    [
        # Deleted and started again with the update already pending.
        ([_observation(_days_ago(1), EXPAT)], "pending since the record's first entry"),
        # Downgraded with dpkg alone, or the hook did not run.
        (
            [_observation(_days_ago(30), {}), _observation(_days_ago(1), {})],
            "absent from the record's last entry",
        ),
        # A record dated ahead of the host's clock.
        (
            [_observation(_days_ago(3), {}), _observation(NOW + timedelta(days=2), EXPAT)],
            "after the host's clock",
        ),
        ([], "the host keeps no record"),
    ],
)
def test_an_update_without_a_known_start_fails(record: list[Any], why: str) -> None:
    found = _assess(_observation(NOW, EXPAT), record)
    assert any(
        p.startswith(
            "libexpat1 2.5.0-1 (Debian-Security has 2.5.0-1+deb12u1) pending since an unknown date"
        )
        and why in p
        for p in found.problems
    ), found.problems


def test_a_record_not_written_after_the_last_list_update_fails() -> None:
    live = _observation(NOW, {}, {SECURITY_INDEX: "2026-12-05T21:00:00Z"})
    found = _assess(live, [_observation(_days_ago(3), {})])
    assert len(found.problems) == 1
    assert "was not written after apt's last list update" in found.problems[0]
    assert "no record of pending security updates" in _assess(live, []).problems[0]


def test_security_lists_too_old_to_know_fail() -> None:
    old = {SECURITY_INDEX: "2026-11-20T03:54:28Z"}
    found = _assess(_observation(NOW, {}, old), [_observation(_days_ago(20), {}, old)])
    assert found.problems == (
        "apt's list of security updates dates from 2026-11-20 03:54 UTC (16 days ago, the "
        "policy allows 7): the host cannot know which security updates are pending "
        "(apt-daily.timer, the mirror?)",
    )


def test_no_security_index_or_an_undated_one_fails() -> None:
    none = _assess(_observation(NOW, {}, {}), [_observation(_days_ago(1), {}, {})])
    assert none.problems[0].startswith("apt holds no index of Debian's security archive")
    undated = {SECURITY_INDEX: ""}
    found = _assess(_observation(NOW, {}, undated), [_observation(_days_ago(1), {}, undated)])
    assert found.problems == (f"security index without a Date: {SECURITY_INDEX}",)


def test_the_record_skips_lines_it_cannot_read() -> None:
    text = "\n".join(
        [
            json.dumps(_entry("2026-12-01T06:00:00Z", {})),
            "{truncated",
            json.dumps({"at": "yesterday"}),
            "",
            json.dumps(_entry("2026-12-02T06:00:00Z", EXPAT)),
        ]
    )
    record = security_updates.parse_record(text)
    assert [e.at.day for e in record.entries] == [1, 2]
    assert record.unreadable == 2
    text = security_updates.evidence(
        "edu1", _assess(_observation(NOW, EXPAT), list(record.entries)), record, 7
    )
    assert text.startswith(
        "edu1 : index Debian-Security du 2026-12-04 03:54 UTC ; 1 mise(s) à jour"
    )
    assert "2 ligne(s) illisible(s)" in text


# --- the policy --------------------------------------------------------------------------


def test_policy_is_read_and_defaults_when_absent(tmp_path: Path) -> None:
    assert policy.load_security().max_pending_days == 7
    assert policy.load_security(tmp_path).max_pending_days == 7  # an older copy


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "less than the minimum of 1"),
        (90, "greater than the maximum of 30"),
        ("7", "not of type 'integer'"),
    ],
)
def test_policy_refuses_a_bad_period(tmp_path: Path, value: object, message: str) -> None:
    data = yaml.safe_load((policies_dir() / "security.yml").read_text())
    data["security_updates"]["max_pending_days"] = value
    (tmp_path / "security.yml").write_text(yaml.safe_dump(data))
    with pytest.raises(
        PolicyError, match=rf"security\.yml: security_updates\.max_pending_days: .*{message}"
    ):
        policy.load_security(tmp_path)
