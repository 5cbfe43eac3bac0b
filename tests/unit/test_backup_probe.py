"""The append-only probe's verdict (educloud.backup.probe): what it counts as a problem."""

from __future__ import annotations

import json

import pytest

from educloud.backup import probe
from educloud.backup.status import BackupError


def _result(**changes: object) -> str:
    data: dict[str, object] = {
        "account": "edu1",
        "target": "198.18.0.20",
        "objects": {"snapshots": 2, "data": 5, "index": 2, "keys": 1},
        "attempts": [
            {"what": "rewrite a snapshot", "method": "POST", "path": "/snapshots/a", "status": 403},
            {"what": "delete a pack", "method": "DELETE", "path": "/data/b", "status": 403},
        ],
        "unchanged": True,
    }
    data.update(changes)
    return "ssh noise\n" + json.dumps(data) + "\n"


def test_every_attempt_refused_is_no_problem() -> None:
    assert probe.parse(_result()).problems == []


def test_a_write_that_went_through_is_named() -> None:
    attempts = [{"what": "delete a pack", "method": "DELETE", "path": "/data/b", "status": 200}]
    problems = probe.parse(_result(attempts=attempts)).problems
    assert problems == ["the client's key could delete a pack (DELETE /data/b: 200)"]


def test_a_changed_repository_or_no_snapshot_is_a_problem() -> None:
    assert probe.parse(_result(unchanged=False)).problems
    assert probe.parse(_result(objects={"snapshots": 0})).problems


def test_a_silent_target_is_one_problem_not_a_pass() -> None:
    """No forced command behind the key: the probe stops at its first request."""
    attempts = [{"what": "read the repository's config", "method": "GET", "path": "/config",
                 "status": 0}]  # fmt: skip
    result = probe.parse(_result(objects={}, attempts=attempts, unchanged=False, silent=True))
    assert len(result.problems) == 1
    assert "answered nothing" in result.problems[0]


def test_no_result_line_is_an_error() -> None:
    with pytest.raises(BackupError):
        probe.parse("Permission denied (publickey).\n")
