"""Print the suite's closing line from the JUnit reports and the step counts.

Usage: tally.py REPORTS_DIR PASSED_STEPS FAILED_STEPS
"""

from __future__ import annotations

import sys
from pathlib import Path

from educloud.junit import read_cases, tally


def main() -> None:
    reports, steps_ok, steps_failed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    by_report = {report.stem: read_cases(report) for report in sorted(reports.glob("*.xml"))}
    cases = [case for found in by_report.values() for case in found]
    counts = tally(cases)
    passed, failed, skipped = counts["passed"], counts["failed"], counts["skipped"]
    # Each failed test by name, with the first line of its message: CI keeps only the end of
    # the output, where a failure deep in a step's log would be lost.
    for stem, found in by_report.items():
        for case in found:
            if case.outcome == "failed":
                first = case.message.strip().splitlines()[0][:200] if case.message.strip() else ""
                print(f"FAILED {stem}: {case.classname}::{case.name}: {first}")
    print(f"\nsteps: {steps_ok} ok, {steps_failed} failed (lint, converge, molecule scenarios)")
    print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
    # The closing line CI reads: tests and steps together.
    print(f"{passed + steps_ok} passed, {failed + steps_failed} failed, {skipped} skipped")


if __name__ == "__main__":
    main()
