"""The compliance report: one entry per guarantee of the charter, built from the checks.

Status of a guarantee (the same words in the CLI table, the JSON, the JUnit properties and
the French report); a status never says more than the checks observed:
- failed ("échec"): a check behind it failed (or could not establish its control);
- verified ("vérifié"): every check listed for it ran and passed, on every host it applies
  to, and at least one of them observed the servers (not only a declaration);
- partial ("partiellement vérifié"): none failed, at least one observing check passed, and
  some did not run (each listed with its reason);
- declared ("déclaré"): none failed, and only checks that read declarations (inventory,
  policy files) passed: nothing was observed on a host or service;
- not_verifiable ("non vérifiable ici"): it has checks but none could run here;
- attest ("à attester"): no machine can check it (contractual, organisational);
- interrupted ("interrompu"): the run did not complete; every guarantee of that run says
  so, and nothing else is claimed.
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
    "partial": "partiellement vérifié",
    "declared": "déclaré",
    "failed": "échec",
    "not_verifiable": "non vérifiable ici",
    "attest": "à attester",
    "interrupted": "interrompu",
}
# Where a check that looks at the whole deployment (no single host) is reported.
DEPLOYMENT_WIDE = "déploiement"
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
    host: str = DEPLOYMENT_WIDE  # where it ran (a host of the inventory, or the deployment)
    declaration: bool = False  # it reads a declaration only (policies/charter.yml says so)


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
    if any(c.outcome == "failed" for c in checks):
        return "failed"
    observed = [c for c in checks if not c.declaration]
    if observed and all(c.outcome == "passed" for c in checks):
        return "verified"
    if any(c.outcome == "passed" for c in observed):
        return "partial"
    if any(c.outcome == "passed" for c in checks):
        return "declared"
    return "not_verifiable"


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else ""


def interruptions(cases: list[Case], known_guarantees: set[str]) -> list[str]:
    """Why the checks' run cannot be trusted as a whole: a case that failed or errored but
    that no guarantee owns (a collection error, a broken fixture of the harness, a check
    without its marker). Empty when every failure belongs to a guarantee."""
    reasons = []
    for case in cases:
        owners = set(filter(None, case.properties.get("charter", "").split(",")))
        if case.outcome == "failed" and not owners & known_guarantees:
            reasons.append(
                f"{case.classname}::{case.name} a échoué hors de toute garantie : "
                f"{_first_line(case.message) or 'sans message'}"
            )
    return reasons


def build(
    policies: Policies,
    cases: list[Case],
    *,
    interrupted: list[str] | None = None,
    only: set[str] | None = None,
) -> list[GuaranteeResult]:
    """One entry per guarantee (those of `only` when the run was limited to them).
    `interrupted`: reasons the run did not complete; every entry is then "interrupted"."""
    declarations = {g.id: set(g.declarations) for g in policies.guarantees}
    results: dict[str, list[CheckResult]] = {g.id: [] for g in policies.guarantees}
    for case in cases:
        check = case.properties.get("check", "")
        for guarantee_id in filter(None, case.properties.get("charter", "").split(",")):
            if guarantee_id in results:
                results[guarantee_id].append(
                    CheckResult(
                        check=check,
                        case=case.name,
                        outcome=case.outcome,
                        message=_first_line(case.message),
                        evidence=case.properties.get("evidence", ""),
                        host=case.properties.get("host") or DEPLOYMENT_WIDE,
                        declaration=check in declarations[guarantee_id],
                    )
                )
    report = []
    for guarantee in policies.guarantees:
        if only is not None and guarantee.id not in only:
            continue
        checks = results[guarantee.id]
        # A check listed in the charter that produced no case at all (nothing to look at).
        ran = {c.check for c in checks}
        for missing in guarantee.checks:
            if missing not in ran:
                checks.append(
                    CheckResult(
                        missing,
                        missing,
                        "skipped",
                        "rien à contrôler dans cet inventaire",
                        "",
                        declaration=missing in declarations[guarantee.id],
                    )
                )
        report.append(
            GuaranteeResult(
                id=guarantee.id,
                title=guarantee.title,
                text=guarantee.text,
                nature=list(guarantee.nature),
                status="interrupted" if interrupted else _status(guarantee, checks),
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


def checks_per_host(report: list[GuaranteeResult]) -> dict[str, dict[str, list[str]]]:
    """For the report's header: on each host (or the whole deployment), which checks
    passed, failed and did not run (each check once per host, whatever its guarantees)."""
    hosts: dict[str, dict[str, set[str]]] = {}
    for entry in report:
        for check in entry.checks:
            outcomes = hosts.setdefault(
                check.host, {"passed": set(), "failed": set(), "skipped": set()}
            )
            outcomes[check.outcome].add(check.check)
    return {
        host: {outcome: sorted(names) for outcome, names in outcomes.items()}
        for host, outcomes in sorted(hosts.items())
    }


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
    inventory: Path,
    started: datetime,
    seconds: float,
    hosts: list[str],
    report: list[GuaranteeResult],
    interrupted: list[str],
) -> dict[str, Any]:
    return {
        "inventory": str(inventory),
        "started": started.isoformat(timespec="seconds"),
        "duration_seconds": round(seconds, 1),
        "hosts": hosts,
        "complete": not interrupted,
        "interrupted": interrupted,
        "checks_per_host": checks_per_host(report),
    }
