"""Running the playbooks: site.yml onto an inventory, with the recap read back as data."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from educloud.deployment.ansible import ansible_env
from educloud.errors import EducloudError
from educloud.paths import ansible_dir, repo_root

_RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)"
)


@dataclass
class HostRecap:
    ok: int
    changed: int
    unreachable: int
    failed: int


@dataclass
class PlaybookResult:
    playbook: str
    returncode: int
    seconds: float
    recap: dict[str, HostRecap] = field(default_factory=dict)
    # What a role stopped short of, in one line each (e.g. "Nextcloud not installed: ...").
    notices: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def changed(self) -> int:
        return sum(r.changed for r in self.recap.values())


def parse_notices(output: str) -> list[str]:
    """The "... not installed: ..." messages roles print when they stop before a step.

    The YAML callback wraps a long message over several indented lines: they are joined.
    """
    notices: list[str] = []
    lines = output.splitlines()
    for index, line in enumerate(lines):
        text = line.strip()
        if not (text.startswith("msg: ") and " not installed: " in text):
            continue
        message = text.removeprefix("msg: ")
        for following in lines[index + 1 :]:
            if not following.startswith("        ") or message.endswith("'"):
                break
            message += " " + following.strip()
        message = message.strip("'")
        if message not in notices:
            notices.append(message)
    return notices


def parse_recap(output: str) -> dict[str, HostRecap]:
    recap: dict[str, HostRecap] = {}
    in_recap = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        match = _RECAP.match(line.strip()) if in_recap else None
        if match:
            recap[match["host"]] = HostRecap(
                int(match["ok"]),
                int(match["changed"]),
                int(match["unreachable"]),
                int(match["failed"]),
            )
    return recap


def run_playbook(
    playbook: str,
    inventory: Path,
    *,
    limit: str | None = None,
    check: bool = False,
    extra_args: list[str] | None = None,
    stream: bool = True,
    on_line: Callable[[str], None] | None = None,
) -> PlaybookResult:
    """Run one playbook of ansible/; output streams to stderr (or to `on_line`), the recap
    is returned."""
    inventory = inventory if inventory.is_absolute() else (repo_root() / inventory)
    if not inventory.exists():
        raise EducloudError(f"inventory {inventory} not found")
    env = ansible_env(inventory)
    argv = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        str(inventory),
        str(ansible_dir() / playbook),
    ]
    if limit:
        argv += ["--limit", limit]
    if check:
        argv += ["--check", "--diff"]
    argv += extra_args or []
    start = time.monotonic()
    process = subprocess.Popen(
        argv,
        cwd=ansible_dir(),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line)
        if on_line is not None:
            on_line(line)
        elif stream:
            sys.stderr.write(line)
    returncode = process.wait()
    output = "".join(lines)
    recap = parse_recap(output)
    if returncode == 0 and not recap and not check:
        raise EducloudError(f"{playbook} matched no host in {inventory}")
    return PlaybookResult(
        playbook, returncode, time.monotonic() - start, recap, parse_notices(output)
    )


def run_site(inventory: Path, *, limit: str | None = None, check: bool = False) -> PlaybookResult:
    """site.yml onto `inventory`, after its inventory and its policies (the inventory's own
    copy, as the plays will read it) are read and validated: bad input changes nothing."""
    from educloud import policy
    from educloud.deployment import model

    inventory = inventory if inventory.is_absolute() else (repo_root() / inventory)
    if not inventory.exists():
        raise EducloudError(f"inventory {inventory} not found")
    policy.load(model.load(inventory).policies_dir)
    return run_playbook("site.yml", inventory, limit=limit, check=check)


def summary_line(result: PlaybookResult) -> str:
    state = "ok" if result.ok else "FAILED"
    hosts = ", ".join(
        f"{host} (changed={r.changed}, failed={r.failed}, unreachable={r.unreachable})"
        for host, r in result.recap.items()
    )
    return f"{result.playbook}: {state} in {result.seconds:.0f} s; {hosts or 'no host'}"
