"""Run the roles' host checks (testinfra) against an inventory and return the results."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from educloud.deployment.ansible import ansible_env
from educloud.errors import EducloudError
from educloud.junit import Case, read_cases
from educloud.paths import repo_root


def role_test_dirs() -> dict[str, Path]:
    """Each role's testinfra checks, the same files its molecule scenario verifies with."""
    roles = repo_root() / "roles"
    return {
        tests.parents[2].name: tests
        for tests in sorted(roles.glob("*/molecule/default/tests"))
        if any(tests.glob("test_*.py"))
    }


def host_checks_argv(
    hosts_file: Path, test_dirs: list[Path], report: Path, workers: int = 2
) -> list[str]:
    """One pytest run of these roles' host checks against every host of the inventory: the
    roles' test files have distinct names, so they share a run (one start-up, one
    inventory read per worker) and its workers (most of a check's time is spent waiting on
    SSH and on Ansible rendering a variable)."""
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:hypothesispytest",  # seconds of start-up per worker; no host check uses it
        *(str(d) for d in test_dirs),
        "--hosts=ansible://all",
        f"--ansible-inventory={hosts_file}",
        f"--junit-xml={report}",
    ]
    return argv + (["-n", str(workers)] if workers > 1 else [])


def role_of(case: Case) -> str:
    """The role whose checks a case is (its classname: roles.<role>.molecule.default.tests...)."""
    parts = case.classname.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "roles" else ""


def run_host_checks(inventory: Path, roles: list[str] | None = None) -> dict[str, list[Case]]:
    inventory = inventory if inventory.is_absolute() else repo_root() / inventory
    hosts_file = inventory / "hosts.yml" if inventory.is_dir() else inventory
    if not hosts_file.exists():
        raise EducloudError(f"inventory {hosts_file} not found")
    selected = {r: d for r, d in role_test_dirs().items() if not roles or r in roles}
    if not selected:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.xml"
        argv = host_checks_argv(hosts_file, list(selected.values()), report)
        env = ansible_env(hosts_file)
        env.setdefault("PY_COLORS", "0")
        subprocess.run(
            argv,
            cwd=repo_root(),
            env=env,
            capture_output=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if not report.exists():
            raise EducloudError("the host checks did not run (pytest wrote no report)")
        cases = read_cases(report)
    results: dict[str, list[Case]] = {role: [] for role in selected}
    for case in cases:
        results.setdefault(role_of(case), []).append(case)
    return results
