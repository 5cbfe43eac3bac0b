"""The break catalogue (tests/lab/breaks/*.yml): deliberate breaks of the charter's
controls on the live lab, kept as data.

Each break names the guarantee it breaks, how it is applied and restored (root shell
commands on a lab host, calls to Keycloak's admin REST API as the master realm's
administrator, or a command on the controller), and a regular expression that a failing
check of that guarantee must print: a break is caught only when `educloud verify` says
"échec" for its guarantee and names what is broken. Verification is limited to the hosts
the steps run on, unless the break names others (`hosts:`): a break on one host whose
check runs for another (the backup target, seen by its client's check), and to the checks
the break names (`checks:`, the test functions of tests/charter whose failure names it):
every one of them must fail with the break in force and pass once it is restored.

A break the system itself may undo before its checks run (an event older than the policy,
which Keycloak's own expiry task deletes every 15 minutes) says how to see that it is still
in force (`holds:`, steps that fail once it is not): when its checks pass, the test looks,
and if the system undid it, applies it once more and judges again. Only the system's own
repair is retried, never a check that missed a break still in force.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from keycloak import KeycloakAdmin

from educloud.deployment import inventory as inventory_vars
from educloud.lab.keycloak_access import admin_client, keycloak_info
from educloud.lab.settings import LabPaths
from educloud.netpin import pinned_names
from educloud.paths import inventories_dir, repo_root

CATALOGUE = Path(__file__).parent / "breaks"
STEP_KINDS = ("ssh", "keycloak", "local")
CHECK_NAME = re.compile(r"test_\w+")


@dataclass(frozen=True)
class Break:
    id: str
    guarantee: str
    what: str
    apply: tuple[dict[str, Any], ...]
    restore: tuple[dict[str, Any], ...]
    expect: str
    # The checks of tests/charter (function names) whose failure names the break.
    checks: tuple[str, ...] = ()
    snapshot: tuple[str, ...] = ()
    hosts: tuple[str, ...] = field(default=())
    # Steps that succeed only while the break is in force (see the module's docstring).
    holds: tuple[dict[str, Any], ...] = ()

    def matches(self, message: str) -> bool:
        return re.search(self.expect, message) is not None

    @property
    def selection(self) -> str:
        """Its checks as a pytest -k expression."""
        return " or ".join(self.checks)


def _hosts(steps: tuple[dict[str, Any], ...]) -> tuple[str, ...]:
    found: list[str] = []
    for step in steps:
        if "local" in step:
            continue  # the controller: the inventory, or a pipe between two lab hosts
        host = step["ssh"]["host"] if "ssh" in step else "edu1"  # Keycloak runs on edu1
        if host not in found:
            found.append(host)
    return tuple(found)


def _check_steps(
    where: str, steps: Any, *, may_be_empty: bool = False
) -> tuple[dict[str, Any], ...]:
    if not isinstance(steps, list) or not (steps or may_be_empty):
        raise ValueError(f"{where}: a non-empty list of steps is required")
    for step in steps:
        kinds = [k for k in STEP_KINDS if k in step]
        if len(kinds) != 1 or len(step) != 1:
            raise ValueError(f"{where}: each step is one of {STEP_KINDS}: {step}")
        if "ssh" in step and not {"host", "command"} <= set(step["ssh"]):
            raise ValueError(f"{where}: an ssh step needs host and command: {step}")
        if "local" in step and "command" not in step["local"]:
            raise ValueError(f"{where}: a local step needs a command: {step}")
        if "keycloak" in step and not {"method", "path"} <= set(step["keycloak"]):
            raise ValueError(f"{where}: a keycloak step needs method and path: {step}")
    return tuple(steps)


def load(directory: Path = CATALOGUE) -> list[Break]:
    """Every break of the catalogue, validated (ids unique, steps well formed)."""
    breaks: list[Break] = []
    for path in sorted(directory.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for index, raw in enumerate(data.get("breaks", [])):
            where = f"{path.name}[{index}]"
            missing = {"id", "guarantee", "what", "apply", "restore", "expect", "checks"} - set(raw)
            if missing:
                raise ValueError(f"{where}: missing {', '.join(sorted(missing))}")
            re.compile(raw["expect"])
            checks = raw["checks"]
            if (
                not isinstance(checks, list)
                or not checks
                or not all(isinstance(c, str) and CHECK_NAME.fullmatch(c) for c in checks)
            ):
                raise ValueError(
                    f"{where}: checks is a non-empty list of check names (test_...): {checks!r}"
                )
            apply = _check_steps(f"{where}.apply", raw["apply"])
            breaks.append(
                Break(
                    id=str(raw["id"]),
                    guarantee=str(raw["guarantee"]),
                    what=str(raw["what"]),
                    apply=apply,
                    # A break whose snapshots put everything back needs no restore step.
                    restore=_check_steps(
                        f"{where}.restore", raw["restore"], may_be_empty=bool(raw.get("snapshot"))
                    ),
                    expect=str(raw["expect"]),
                    checks=tuple(checks),
                    snapshot=tuple(raw.get("snapshot", [])),
                    # The hosts whose checks see the break: those its steps run on, or the
                    # ones it names (a break on the backup target shows in its client's check).
                    hosts=tuple(raw.get("hosts") or _hosts(apply)),
                    holds=_check_steps(f"{where}.holds", raw.get("holds", []), may_be_empty=True),
                )
            )
    ids = [b.id for b in breaks]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ValueError(f"break ids listed twice: {', '.join(duplicated)}")
    return breaks


class LabActions:
    """Runs the steps of a break on the lab."""

    def __init__(self) -> None:
        self._keycloak: KeycloakAdmin | None = None
        self._hosts: dict[str, inventory_vars.InventoryHost] = {}
        info = keycloak_info(inventories_dir() / "lab", LabPaths.default().root / "ca.crt")
        self._info = info

    def keycloak(self) -> KeycloakAdmin:
        if self._keycloak is None:
            with pinned_names(self._info.pinned):
                self._keycloak = admin_client(self._info)
        return self._keycloak

    def call(self, method: str, path: str, body: Any = None) -> Any:
        admin = self.keycloak()
        connection = admin.connection
        # python-keycloak refreshes an expired token inside raw_*.
        with pinned_names(self._info.pinned):
            if method == "GET":
                response = connection.raw_get(path)
            elif method == "DELETE":
                response = connection.raw_delete(path)
            elif method == "POST":
                response = connection.raw_post(path, data=json.dumps(body))
            elif method == "PUT":
                response = connection.raw_put(path, data=json.dumps(body))
            else:
                raise ValueError(f"unknown method {method}")
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content and method == "GET" else None

    def ssh(self, host: str, command: str) -> None:
        """A root shell command on a lab host, as Ansible reaches it (no CLI start-up)."""
        if not self._hosts:
            self._hosts = {h.name: h for h in inventory_vars.load(inventories_dir() / "lab")}
        _checked(host, command, [*self._hosts[host].ssh_argv(), "--", command])

    def local(self, command: str) -> None:
        """A shell command on the controller, in the repository (PATH has the venv's tools)."""
        _checked("controller", command, ["bash", "-c", command])

    def run(self, step: dict[str, Any]) -> None:
        if "local" in step:
            self.local(step["local"]["command"])
        elif "ssh" in step:
            self.ssh(step["ssh"]["host"], step["ssh"]["command"])
        else:
            call = step["keycloak"]
            self.call(call["method"], call["path"], call.get("json"))

    def still_in_force(self, broken: Break) -> bool:
        """Whether every `holds` step of the break succeeds (True when it has none)."""
        try:
            for step in broken.holds:
                self.run(step)
        except RuntimeError:
            return False
        return True

    def apply(self, broken: Break) -> None:
        """The break's apply steps (again, when the system undid it before its checks)."""
        for step in broken.apply:
            self.run(step)

    @contextmanager
    def applied(self, broken: Break) -> Iterator[None]:
        """The break in force inside the block; restored (and snapshots put back) after,
        whatever happens inside."""
        snapshots = [(path, self.call("GET", path)) for path in broken.snapshot]
        try:
            self.apply(broken)
            yield
        finally:
            errors = []
            for step in broken.restore:
                try:
                    self.run(step)
                except Exception as exc:  # restore every step, then report them all
                    errors.append(f"{step}: {exc}")
            for path, representation in reversed(snapshots):
                self.call("PUT", path, representation)
            if errors:
                raise RuntimeError(f"{broken.id}: restore failed: {'; '.join(errors)}")


def _checked(where: str, command: str, argv: list[str]) -> None:
    """Run a break's step; a step that fails stops the break with what it said."""
    done = subprocess.run(
        argv,
        cwd=repo_root(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        said = done.stderr.strip()[-300:]
        raise RuntimeError(f"{where}: {command!r} exited {done.returncode}: {said}")
