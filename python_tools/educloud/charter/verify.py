"""`educloud verify`: run the charter checks against an inventory and write the report."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from educloud import policy
from educloud.charter import deployment as deployment_mod
from educloud.charter import report as report_mod
from educloud.deploy import ansible_env
from educloud.errors import EducloudError
from educloud.junit import read_cases
from educloud.netpin import PUBLIC_TARGETS_ENV
from educloud.paths import repo_root


@dataclass(frozen=True)
class Verification:
    report: list[report_mod.GuaranteeResult]
    outputs: dict[str, Path]
    junit: Path
    seconds: float
    pytest_returncode: int


def charter_tests_dir() -> Path:
    return repo_root() / "tests" / "charter"


def pytest_argv(
    inventory: Path, junit: Path, *, workers: int = 1, limit: str = "", selection: str = ""
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
    ]
    if workers > 1:
        argv += ["-n", str(workers)]
    if limit:
        argv.append(f"--educloud-limit={limit}")
    if selection:
        argv += ["-k", selection]
    return argv


def verify(
    inventory: Path,
    output_dir: Path,
    limit: str = "",
    workers: int = 0,
    allow_public_targets: bool = False,
) -> Verification:
    inventory = inventory if inventory.is_absolute() else repo_root() / inventory
    if not inventory.exists():
        raise EducloudError(f"inventory {inventory} not found")
    dep = deployment_mod.load(inventory)  # a broken inventory fails here, before any check
    policies = policy.load(dep.policies_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    junit = output_dir / "charter-junit.xml"
    # Parallel across hosts: measured on the one-host lab with 2 cores, 4 workers took
    # 37 s against 30 s for one (benchmarks/verify_workers.py), so one worker per host.
    workers = workers or min(len(dep.hosts), os.cpu_count() or 1, 8)
    argv = pytest_argv(inventory, junit, workers=workers, limit=limit)
    env = ansible_env()
    if allow_public_targets:
        env[PUBLIC_TARGETS_ENV] = "1"
    started = datetime.now(UTC)
    clock = time.monotonic()
    junit.unlink(missing_ok=True)
    # pytest prints its progress to the terminal: the tester sees each check go by.
    completed = subprocess.run(argv, cwd=repo_root(), env=env, check=False)
    seconds = time.monotonic() - clock
    if not junit.exists():
        raise EducloudError(
            f"the charter checks did not run (pytest exited {completed.returncode})"
        )
    report = report_mod.build(policies, read_cases(junit))
    meta = report_mod.meta_for(inventory, started, seconds, [h.name for h in dep.hosts])
    outputs = report_mod.write(report, meta, output_dir)
    return Verification(report, outputs, junit, seconds, completed.returncode)
