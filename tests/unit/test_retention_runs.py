"""The retention run's outcome read from its journal lines (C7)."""

from __future__ import annotations

from educloud.charter import retention_runs

OK = [
    "1796521370.1 edu1 systemd[1]: Starting educloud-retention.service - Apply ...",
    "1796521371.0 edu1 educloud[1]: applied: 0 done, 0 failed; journal /var/lib/x.jsonl",
    "1796521371.1 edu1 systemd[1]: educloud-retention.service: Deactivated successfully.",
    "1796521371.2 edu1 systemd[1]: Finished educloud-retention.service - Apply ...",
]
FAILED = [
    "1796600000.0 edu1 educloud[2]: error: cannot reach Keycloak",
    "1796600000.1 edu1 systemd[1]: educloud-retention.service: Main process exited, "
    "code=exited, status=1/FAILURE",
    "1796600000.2 edu1 systemd[1]: educloud-retention.service: Failed with result 'exit-code'.",
]


def test_a_successful_run() -> None:
    run = retention_runs.last_run(OK)
    assert run is not None and run.finished == 1796521371.1 and run.outcome == "réussi"
    assert retention_runs.run_problems(run, 26) == []


def test_the_last_run_decides() -> None:
    run = retention_runs.last_run(OK + FAILED)
    assert run is not None and run.outcome == "échec (exit-code)"
    assert retention_runs.run_problems(run, 26) == [
        "the last retention run ended in échec (exit-code)"
    ]
    assert retention_runs.last_run(FAILED + OK).outcome == "réussi"  # type: ignore[union-attr]


def test_no_run_or_failed_actions_are_problems() -> None:
    assert retention_runs.run_problems(retention_runs.last_run([]), 26) == [
        "the retention has not run in the last 26 hours"
    ]
    partial = [OK[0], OK[1].replace("0 failed", "2 failed"), OK[2]]
    assert (
        "failed 2 action(s)" in retention_runs.run_problems(retention_runs.last_run(partial), 26)[0]
    )
    silent = [OK[0], OK[2]]
    assert retention_runs.run_problems(retention_runs.last_run(silent), 26) == [
        "the last retention run wrote no 'applied:' summary"
    ]
