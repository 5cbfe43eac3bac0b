"""`educloud verify`: run the charter checks against an inventory and write the report."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from educloud import policy
from educloud.charter import report as report_mod
from educloud.deployment import inventory as inventory_vars
from educloud.deployment import model as deployment_mod
from educloud.deployment.ansible import ansible_env
from educloud.errors import EducloudError
from educloud.junit import add_suite_properties, read_cases
from educloud.netpin import PUBLIC_TARGETS_ENV
from educloud.paths import repo_root

# pytest's exit codes that mean every collected check ran to its end (0: all passed,
# 1: some failed); anything else (interrupted, internal error, usage error, nothing
# collected) means the run did not complete.
COMPLETE_RUN = (0, 1)
PYTEST_EXIT_FR = {
    2: "exécution interrompue (erreur de collecte ou interruption)",
    3: "erreur interne de pytest",
    4: "erreur d'utilisation de pytest",
    5: "aucun contrôle collecté",
}


@dataclass(frozen=True)
class Verification:
    report: list[report_mod.GuaranteeResult]
    outputs: dict[str, Path]
    junit: Path
    seconds: float
    pytest_returncode: int
    # Why the run cannot be trusted as a whole (empty: it completed).
    interrupted: list[str]


def charter_tests_dir() -> Path:
    return repo_root() / "tests" / "charter"


def pytest_argv(
    inventory: Path,
    junit: Path,
    *,
    workers: int = 1,
    limit: str = "",
    selection: str = "",
    guarantees: Collection[str] = (),
) -> list[str]:
    """The pytest command of the charter checks (verify, the benchmark, the lab tests)."""
    argv = [
        sys.executable,
        "-m",
        "pytest",
        str(charter_tests_dir()),
        "-p",
        "no:cacheprovider",
        f"--educloud-inventory={inventory}",
        f"--junit-xml={junit}",
        "-o",
        "junit_family=xunit1",  # keeps record_property (the evidence) in the XML
        "-q",
        "-rfE",
        "-p",
        "no:warnings",  # library deprecation notices are not the tester's concern
        # Hypothesis (installed for the unit tests) loads its pytest plugin in every run:
        # an empty charter run starts in 2.6 s with it, 1.8 s without on a quiet 2-core
        # machine (2.4 s more under load; benchmarks/break_verdicts.py), paid twice per
        # break of the catalogue. No charter check uses it.
        "-p",
        "no:hypothesispytest",
    ]
    if workers > 1:
        argv += ["-n", str(workers)]
    if limit:
        argv.append(f"--educloud-limit={limit}")
    if selection:
        argv += ["-k", selection]
    if guarantees:
        argv.append(f"--educloud-guarantees={','.join(sorted(guarantees))}")
    return argv


def deployed_policy_problems(dep: deployment_mod.Deployment, directory: Path) -> list[str]:
    """Where the policies in `directory` are not those the deploy recorded on each host
    (policy.APPLIED_RECORD); an unreachable host is left to its checks."""
    import json

    from educloud import remote

    mine = policy.fingerprint(directory)
    problems = []
    for host in dep.hosts:
        try:
            answer = remote.call(host, ["cat", policy.APPLIED_RECORD], timeout=30)
        except EducloudError:
            continue
        if answer.returncode != 0:
            problems.append(f"{host.name}: no record of the policies deployed (deploy first)")
            continue
        try:
            deployed = json.loads(answer.stdout)["files"]
        except (ValueError, KeyError, TypeError):
            problems.append(f"{host.name}: {policy.APPLIED_RECORD} is not a policies record")
            continue
        differences = policy.fingerprint_differences(mine, deployed)
        if differences:
            problems.append(f"{host.name}: {', '.join(differences)}")
    return problems


def verify(
    inventory: Path,
    output_dir: Path,
    limit: str = "",
    workers: int = 0,
    allow_public_targets: bool = False,
    guarantees: Collection[str] = (),
    quiet: bool = False,
    selection: str = "",
) -> Verification:
    """Run the charter checks (those of `guarantees` only, when given; `selection`, a
    pytest -k expression, narrows them further) and write the reports. `quiet`: keep
    pytest's progress off the terminal (the break tests)."""
    inventory = inventory if inventory.is_absolute() else repo_root() / inventory
    if not inventory.exists():
        raise EducloudError(f"inventory {inventory} not found")
    dep = deployment_mod.load(inventory)  # a broken inventory fails here, before any check
    policies = policy.load(dep.policies_dir)
    # A report against other policies than the deployed ones would verify the wrong promise.
    mismatched = deployed_policy_problems(dep, policies.directory)
    if mismatched:
        raise EducloudError(
            f"the policies in {policies.directory} are not those deployed on the hosts: "
            + "; ".join(mismatched)
            + ". Deploy these policies (educloud deploy), or verify with the copy that was "
            "deployed (educloud_policies_dir in the inventory); no report was written"
        )
    # Each name of --limit must select a host or a group that has one (a typo would turn
    # every host check into "non exécuté" and the report into a partial one).
    unmatched = [
        part
        for part in (p.strip() for p in limit.split(","))
        if part and not any(h.name == part or part in h.groups for h in dep.hosts)
    ]
    if unmatched:
        raise EducloudError(
            f"--limit {', '.join(unmatched)}: no host of the inventory is named so or in such "
            f"a group (hosts: {', '.join(h.name for h in dep.hosts)}); no report was written"
        )
    known = {g.id for g in policies.guarantees}
    unknown = sorted(set(guarantees) - known)
    if unknown:
        raise EducloudError(
            f"unknown guarantee(s) {', '.join(unknown)}: "
            f"the charter lists {', '.join(sorted(known))}"
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    junit = output_dir / "charter-junit.xml"
    # Parallel across hosts: measured on the one-host lab with 2 cores, 4 workers took
    # 37 s against 30 s for one (benchmarks/verify_workers.py), so one worker per host.
    workers = workers or min(len(dep.hosts), os.cpu_count() or 1, 8)
    argv = pytest_argv(
        inventory, junit, workers=workers, limit=limit, guarantees=guarantees, selection=selection
    )
    env = ansible_env(inventory)
    if allow_public_targets:
        env[PUBLIC_TARGETS_ENV] = "1"
    started = datetime.now(UTC)
    clock = time.monotonic()
    junit.unlink(missing_ok=True)
    # The child reads the inventory this process has just read, not a second time.
    listing = output_dir / ".inventory-listing.json"
    inventory_vars.write_cache(inventory, listing)
    env[inventory_vars.CACHE_ENV] = str(listing)
    # pytest prints its progress to the terminal: the tester sees each check go by.
    completed = subprocess.run(
        argv,
        cwd=repo_root(),
        env=env,
        check=False,
        capture_output=quiet,
        text=quiet,
        stdin=subprocess.DEVNULL,
    )
    seconds = time.monotonic() - clock
    listing.unlink(missing_ok=True)
    cases = read_cases(junit) if junit.exists() else []
    interrupted = report_mod.interruptions(cases, known)
    if completed.returncode not in COMPLETE_RUN:
        reason = PYTEST_EXIT_FR.get(completed.returncode, "fin anormale")
        interrupted.insert(
            0, f"les contrôles n'ont pas abouti : {reason} (code {completed.returncode})"
        )
    if not junit.exists():
        interrupted.insert(0, "aucun rapport JUnit : les contrôles n'ont pas tourné")
    only = set(guarantees) if guarantees else None
    report = report_mod.build(policies, cases, interrupted=interrupted, only=only)
    meta = report_mod.meta_for(
        inventory, started, seconds, [h.name for h in dep.hosts], report, interrupted
    )
    outputs = report_mod.write(report, meta, output_dir)
    if junit.exists():
        add_suite_properties(
            junit,
            {"educloud.complete": str(not interrupted).lower()}
            | {f"educloud.{entry.id}": entry.status for entry in report},
        )
    return Verification(report, outputs, junit, seconds, completed.returncode, interrupted)
