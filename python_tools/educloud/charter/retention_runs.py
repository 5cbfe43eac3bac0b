"""The retention run's last outcome, read from its unit's lines in the system journal (C7).

systemd forgets a finished oneshot unit's timestamps once it unloads it, so `systemctl
show` cannot say when the retention last ran; the journal can. Lines are those of
`journalctl -u educloud-retention.service -o short-unix` (seconds since the epoch first).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UNIT = "educloud-retention.service"
_APPLIED = re.compile(r"\bapplied: (\d+) done, (\d+) failed")


@dataclass(frozen=True)
class Run:
    finished: float  # when systemd recorded its end
    outcome: str  # "réussi" or systemd's failure result
    applied: str  # the run's own summary line ("applied: N done, M failed"), if it wrote one
    failed_actions: int


def last_run(lines: list[str]) -> Run | None:
    """The last run that ended among `lines`, or None when none did."""
    applied, failed_actions, found = "", 0, None
    for line in lines:
        stamp, _, text = line.partition(" ")
        try:
            when = float(stamp)
        except ValueError:
            continue
        match = _APPLIED.search(text)
        if match:
            applied, failed_actions = match.group(0), int(match.group(2))
        elif f"{UNIT}: Failed with result" in text:
            result = text.split("Failed with result", 1)[1].strip(" '.")
            found = Run(when, f"échec ({result})", applied, failed_actions)
            applied, failed_actions = "", 0
        elif f"{UNIT}: Deactivated successfully" in text:
            found = Run(when, "réussi", applied, failed_actions)
            applied, failed_actions = "", 0
    return found


def run_problems(run: Run | None, within_hours: int) -> list[str]:
    """Empty when the retention ran to its end, without failure, within the hours."""
    if run is None:
        return [f"the retention has not run in the last {within_hours} hours"]
    if run.outcome != "réussi":
        return [f"the last retention run ended in {run.outcome}"]
    if not run.applied:
        return ["the last retention run wrote no 'applied:' summary"]
    if run.failed_actions:
        return [f"the last retention run failed {run.failed_actions} action(s): {run.applied}"]
    return []
