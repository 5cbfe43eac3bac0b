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


def run_host_checks(inventory: Path, roles: list[str] | None = None) -> dict[str, list[Case]]:
    inventory = inventory if inventory.is_absolute() else repo_root() / inventory
    hosts_file = inventory / "hosts.yml" if inventory.is_dir() else inventory
    if not hosts_file.exists():
        raise EducloudError(f"inventory {hosts_file} not found")
    results: dict[str, list[Case]] = {}
    for role, tests in role_test_dirs().items():
        if roles and role not in roles:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "report.xml"
            argv = [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                str(tests),
                "--hosts=ansible://all",
                f"--ansible-inventory={hosts_file}",
                f"--junit-xml={report}",
            ]
            env = ansible_env(hosts_file)
            env.setdefault("PY_COLORS", "0")
            subprocess.run(argv, cwd=repo_root(), env=env, capture_output=True, check=False)
            if not report.exists():
                raise EducloudError(f"host checks for {role} did not run (pytest wrote no report)")
            results[role] = read_cases(report)
    return results
