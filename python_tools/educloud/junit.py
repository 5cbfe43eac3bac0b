"""Reading JUnit XML reports written by pytest (ours, from this run)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Case:
    classname: str
    name: str
    outcome: str  # passed, failed, skipped
    message: str = ""


def read_cases(report: Path) -> list[Case]:
    cases: list[Case] = []
    # Reports pytest wrote in this run, not untrusted input.
    root = ET.parse(report).getroot()  # noqa: S314
    for case in root.iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in {"failure", "error"}:
                outcome, message = "failed", child.get("message", "")
                break
            if child.tag == "skipped":
                outcome, message = "skipped", child.get("message", "")
        cases.append(Case(case.get("classname", ""), case.get("name", ""), outcome, message))
    return cases


def tally(cases: list[Case]) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for case in cases:
        counts[case.outcome] += 1
    return counts
