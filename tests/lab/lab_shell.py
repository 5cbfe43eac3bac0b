"""A command on a lab host, through `educloud lab ssh` (the lab's own key and known hosts),
a playbook of tests/lab/playbooks on one lab host, through the lab's inventory, and the
verdict of `educloud verify` on some of the lab's hosts and checks."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from educloud.charter import verify as verify_mod
from educloud.charter.report import GuaranteeResult
from educloud.deployment.ansible import ansible_env
from educloud.paths import inventories_dir


def lab_ssh(host: str, command: str) -> str:
    """Run `command` on the lab host `host`; its standard output (failure raises)."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "educloud"), "lab", "ssh", host, "--", command],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return result.stdout


def lab_playbook(
    playbook: Path, host: str, variables: dict[str, object]
) -> subprocess.CompletedProcess[str]:
    """ansible-playbook `playbook` on the lab host `host` with `variables` as extra vars
    (the lab's inventory and vault, as `educloud deploy` runs them); never raises. The
    variables go through a 0600 file: a secret among them never reaches a command line."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as extra:
        Path(extra.name).chmod(0o600)
        json.dump(variables, extra)
        extra.flush()
        return subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible-playbook"),
                str(playbook),
                "-i",
                str(inventories_dir() / "lab"),
                "--limit",
                host,
                "-e",
                f"@{extra.name}",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
            env=ansible_env(inventories_dir() / "lab"),
            stdin=subprocess.DEVNULL,
        )


def lab_verdict(guarantee: str, hosts: Sequence[str], selection: str) -> GuaranteeResult:
    """`educloud verify` of `guarantee` on the lab's `hosts`, its checks narrowed by
    `selection` (a pytest -k expression): one pytest worker (a few checks gain nothing
    from a second one). The run must complete."""
    with tempfile.TemporaryDirectory() as tmp:
        result = verify_mod.verify(
            inventories_dir() / "lab",
            Path(tmp),
            limit=",".join(hosts),
            workers=1,
            guarantees=[guarantee],
            quiet=True,
            selection=selection,
        )
    assert not result.interrupted, result.interrupted
    (entry,) = result.report
    return entry
