"""Reading JUnit XML reports written by pytest (ours, from this run)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Case:
    classname: str
    name: str
    outcome: str  # passed, failed, skipped
    message: str = ""
    # record_property values; a name recorded several times keeps its last value.
    properties: dict[str, str] = field(default_factory=dict)


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
        properties = {prop.get("name", ""): prop.get("value", "") for prop in case.iter("property")}
        cases.append(
            Case(case.get("classname", ""), case.get("name", ""), outcome, message, properties)
        )
    return cases


def tally(cases: list[Case]) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for case in cases:
        counts[case.outcome] += 1
    return counts


def add_suite_properties(report: Path, properties: dict[str, str]) -> None:
    """Add properties to every testsuite of a JUnit report (the charter's verdicts, so
    that CI reads the same statuses as the French report)."""
    tree = ET.parse(report)  # noqa: S314 - our own report, as above
    root = tree.getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    for suite in suites:
        holder = suite.find("properties")
        if holder is None:
            holder = ET.Element("properties")
            suite.insert(0, holder)
        for name, value in properties.items():
            ET.SubElement(holder, "property", {"name": name, "value": value})
    tree.write(report, encoding="utf-8", xml_declaration=True)
