"""Print the suite's closing line from the JUnit reports and the step counts.

Usage: tally.py REPORTS_DIR PASSED_STEPS FAILED_STEPS
"""

from __future__ import annotations

import sys
from pathlib import Path

from educloud.junit import read_cases, tally


def main() -> None:
    reports, steps_ok, steps_failed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    cases = [case for report in sorted(reports.glob("*.xml")) for case in read_cases(report)]
    counts = tally(cases)
    passed, failed, skipped = counts["passed"], counts["failed"], counts["skipped"]
    print(f"\nsteps: {steps_ok} ok, {steps_failed} failed (lint, converge, molecule scenarios)")
    print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
    # The closing line CI reads: tests and steps together.
    print(f"{passed + steps_ok} passed, {failed + steps_failed} failed, {skipped} skipped")


if __name__ == "__main__":
    main()
