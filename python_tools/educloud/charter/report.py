"""The compliance report: one entry per guarantee of the charter, built from the checks.

Status of a guarantee:
- failed ("échec"): a check behind it failed;
- verified ("vérifié"): no check failed and at least one passed (checks that could not
  run here are listed with it, so a partial verification is visible);
- not_verifiable ("non vérifiable ici"): it has checks but none could run here;
- attest ("à attester"): no machine can check it (contractual, organisational).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from educloud.junit import Case
from educloud.policy import Guarantee, Policies

STATUS_FR = {
    "verified": "vérifié",
    "failed": "échec",
    "not_verifiable": "non vérifiable ici",
    "attest": "à attester",
}
OUTCOME_FR = {"passed": "réussi", "failed": "échoué", "skipped": "non exécuté"}
NATURE_FR = {
    "technical": "technique",
    "organisational": "organisationnelle",
    "contractual": "contractuelle",
    "declared": "déclarée",
}


@dataclass(frozen=True)
class CheckResult:
    check: str  # file::function, as named in policies/charter.yml
    case: str  # the test case, with its parameter (host, site, realm, page)
    outcome: str  # passed | failed | skipped
    message: str
    evidence: str


@dataclass
class GuaranteeResult:
    id: str
    title: str
    text: str
    nature: list[str]
    status: str
    attestation: str
    controls: list[dict[str, Any]]
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        counts = {"passed": 0, "failed": 0, "skipped": 0}
        for check in self.checks:
            counts[check.outcome] += 1
        return counts


def _status(guarantee: Guarantee, checks: list[CheckResult]) -> str:
    if not guarantee.technical:
        return "attest"
    outcomes = {c.outcome for c in checks}
    if "failed" in outcomes:
        return "failed"
    if "passed" in outcomes:
        return "verified"
    return "not_verifiable"


def build(policies: Policies, cases: list[Case]) -> list[GuaranteeResult]:
    results: dict[str, list[CheckResult]] = {g.id: [] for g in policies.guarantees}
    for case in cases:
        check = case.properties.get("check", "")
        result = CheckResult(
            check=check,
            case=case.name,
            outcome=case.outcome,
            message=case.message.splitlines()[0] if case.message else "",
            evidence=case.properties.get("evidence", ""),
        )
        for guarantee_id in filter(None, case.properties.get("charter", "").split(",")):
            if guarantee_id in results:
                results[guarantee_id].append(result)
    report = []
    for guarantee in policies.guarantees:
        checks = results[guarantee.id]
        # A check listed in the charter that produced no case at all (nothing to look at).
        ran = {c.check for c in checks}
        for missing in guarantee.checks:
            if missing not in ran:
                checks.append(
                    CheckResult(
                        missing, missing, "skipped", "nothing to check in this inventory", ""
                    )
                )
        report.append(
            GuaranteeResult(
                id=guarantee.id,
                title=guarantee.title,
                text=guarantee.text,
                nature=list(guarantee.nature),
                status=_status(guarantee, checks),
                attestation=guarantee.attestation,
                controls=[
                    {"role": c.role, "variables": list(c.variables)} for c in guarantee.controls
                ],
                checks=checks,
            )
        )
    return report


def technical_failures(report: list[GuaranteeResult]) -> list[str]:
    return [entry.id for entry in report if entry.status == "failed"]


def to_json(report: list[GuaranteeResult], meta: dict[str, Any]) -> str:
    return json.dumps(
        {
            "meta": meta,
            "guarantees": [asdict(entry) | {"counts": entry.counts} for entry in report],
        },
        ensure_ascii=False,
        indent=2,
    )


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("educloud", "data"),
        autoescape=select_autoescape(["html"], default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals.update(STATUS_FR=STATUS_FR, OUTCOME_FR=OUTCOME_FR, NATURE_FR=NATURE_FR)
    env.filters["fr"] = lambda value, table: table.get(value, value)
    return env


def render(report: list[GuaranteeResult], meta: dict[str, Any], template: str) -> str:
    return _environment().get_template(template).render(report=report, meta=meta)


def write(report: list[GuaranteeResult], meta: dict[str, Any], directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    outputs = {
        "json": directory / "charter-report.json",
        "markdown": directory / "rapport-conformite.md",
        "html": directory / "rapport-conformite.html",
    }
    outputs["json"].write_text(to_json(report, meta) + "\n", encoding="utf-8")
    outputs["markdown"].write_text(render(report, meta, "report.md"), encoding="utf-8")
    outputs["html"].write_text(render(report, meta, "report.html"), encoding="utf-8")
    return outputs


def meta_for(
    inventory: Path, started: datetime, seconds: float, hosts: list[str]
) -> dict[str, Any]:
    return {
        "inventory": str(inventory),
        "started": started.isoformat(timespec="seconds"),
        "duration_seconds": round(seconds, 1),
        "hosts": hosts,
    }
