"""A command on an inventory host over SSH, as Ansible reaches it (root, or sudo -n)."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from educloud.deployment.inventory import InventoryHost
from educloud.errors import EducloudError


@dataclass(frozen=True)
class Answer:
    returncode: int
    stdout: str
    stderr: str

    def said(self, limit: int = 400) -> str:
        text = " ".join((self.stderr or self.stdout).split())
        return text[-limit:] or f"exit status {self.returncode}"


def ssh_command(host: InventoryHost, command: Sequence[str]) -> list[str]:
    """The argv that runs `command` on `host` as root."""
    remote = list(command) if host.user == "root" else ["sudo", "-n", *command]
    ssh = host.ssh_argv()
    # An unreachable host fails in seconds, not at TCP's timeout.
    return [ssh[0], "-o", "ConnectTimeout=15", *ssh[1:], "--", shlex.join(remote)]


def call(
    host: InventoryHost,
    command: Sequence[str],
    *,
    timeout: float = 600.0,
    error: type[EducloudError] = EducloudError,
    input_text: str | None = None,
) -> Answer:
    """Run `command` on `host`; its exit status is the caller's to judge. SSH's own failures
    (unreachable host, refused key) and timeouts raise `error`."""
    what = " ".join(command[:2])
    try:
        done = subprocess.run(
            ssh_command(host, command),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            input=input_text,
        )
    except FileNotFoundError:
        raise error("ssh is not installed on this machine") from None
    except subprocess.TimeoutExpired:
        raise error(f"{host.name}: {what} gave no answer in {timeout:.0f} s") from None
    if done.returncode == 255:  # ssh's own failure, not the command's
        raise error(
            f"{host.name}: cannot reach {host.address} over SSH: "
            + " ".join(done.stderr.split())[-300:]
        )
    return Answer(done.returncode, done.stdout, done.stderr)
