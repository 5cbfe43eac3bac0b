"""educloud.lab.lynis: reading a Lynis report and log (issue #26)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from educloud.lab import lynis

# Lines as Lynis 3.0.8 writes them (include/functions: LogText, AddHP; include/report).
LOG = """\
2026-12-07 16:00:01 Performing test ID SSH-7408 (Check SSH specific defined options)
2026-12-07 16:00:01 Hardening: assigned maximum number of hardening points for this item (3). \
Currently having 3 points (out of 3)
2026-12-07 16:00:01 Hardening: assigned partial number of hardening points (0 of 3). \
Currently having 3 points (out of 6)
2026-12-07 16:00:02 Performing test ID BANN-7126 (Check issue banner file contents)
2026-12-07 16:00:02 Hardening: assigned partial number of hardening points (0 of 1). \
Currently having 3 points (out of 7)
2026-12-07 16:00:03 Performing test ID AUTH-9230 (Check password hashing rounds)
2026-12-07 16:00:03 Hardening: assigned maximum number of hardening points for this item (2). \
Currently having 5 points (out of 9)
"""

REPORT = """\
# Lynis Report
report_version_major=1
hardening_index=55
suggestion[]=SSH-7408|Consider hardening SSH configuration|MaxSessions (set 10 to 2)|-|
warning[]=PKGS-7392|Found one or more vulnerable packages.|-|-|
exception_event[]=DBS-1882|Found Redis, but no configuration file.|
"""


def test_report_gives_index_warnings_and_suggestions() -> None:
    result = lynis.parse_report(REPORT, LOG)
    assert result.hardening_index == 55
    assert result.warnings == ["PKGS-7392|Found one or more vulnerable packages.|-|-|"]
    assert len(result.suggestions) == 1
    assert result.exceptions == ["DBS-1882|Found Redis, but no configuration file.|"]


def test_points_are_attributed_to_the_test_that_assigned_them() -> None:
    result = lynis.parse_report(REPORT, LOG)
    assert result.points == {"SSH-7408": [3, 6], "BANN-7126": [0, 1], "AUTH-9230": [2, 2]}
    assert (result.earned, result.possible) == (5, 9)
    # The largest loss first; a test with every point is not listed.
    assert result.lost() == [("SSH-7408", 3, 6), ("BANN-7126", 0, 1)]


@pytest.mark.parametrize(
    "report",
    ["", "report_version_major=1\n", "hardening_index=\n", "hardening_index=high\n"],
)
def test_a_report_without_a_numeric_index_is_refused(report: str) -> None:
    with pytest.raises(lynis.LynisError, match="hardening_index"):
        lynis.parse_report(report)


def test_archive_is_owned_by_root_and_writable_by_root_only(tmp_path: Path) -> None:
    (tmp_path / "include").mkdir()
    script = tmp_path / "lynis"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o777)
    with tarfile.open(fileobj=io.BytesIO(lynis.package_archive(tmp_path))) as archive:
        members = archive.getmembers()
    assert {m.name for m in members} == {".", "./include", "./lynis"}
    assert all(m.uid == 0 and m.gid == 0 and not m.mode & 0o022 for m in members)


def test_audit_command_keeps_report_and_log_in_the_runs_folder() -> None:
    command = lynis.audit_command("/run/lynis.abc")
    assert "--usecwd" in command
    # Run through sh: a /tmp mounted noexec (ANSSI R28) still runs it.
    assert "sh ./lynis audit system" in command
    # Debian's profile would refresh the host's package lists: the custom profile does not.
    assert "refresh-repositories=no" in lynis.CUSTOM_PROFILE.splitlines()
    assert "--report-file /run/lynis.abc/report.dat" in command
    assert "--logfile /run/lynis.abc/lynis.log" in command
