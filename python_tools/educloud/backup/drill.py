"""The restore drill: the latest backup of a host restored onto a fresh host, and proved.

    validate the request (nothing changes before) -> boot a fresh disposable host ->
    ansible/backup-drill.yml (restore, PostgreSQL, checksums, Keycloak, a login) ->
    read the report the playbook wrote -> destroy the host (unless kept)

The playbook does the work and writes `drill.json` on this machine (even when a step
fails: then it names the step); this module validates, orchestrates and reads it. The
same playbook is the restore procedure of docs/backup.md on a real incident. Where the
fresh host comes from is a `DrillHosts` given by the caller (the lab's: educloud.lab.drill).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import yaml

from educloud.backup.maintenance import destination_kind
from educloud.backup.remote import BACKUP_GROUP, TARGET_GROUP
from educloud.backup.status import BackupError, Snapshot, parse_snapshots, parse_time
from educloud.deployment.inventory import InventoryHost

PLAYBOOK = "backup-drill.yml"
DRILL_GROUP = "backup_drill"
DEFAULT_LAB_HOST = "drill1"
REPORT_FILE = "drill.json"

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class FreshHost:
    """A disposable host booted for the drill, reachable by SSH as root."""

    name: str
    address: str
    ssh_key: Path
    known_hosts: Path


class DrillHosts(Protocol):
    """Where drills restore: fresh disposable hosts, never one that serves anything."""

    def taken(self) -> Collection[str]:
        """The names of hosts a drill must never boot over nor destroy."""
        ...

    def check_name(self, name: str) -> None:
        """Raise with the reason when `name` cannot name a drill host."""
        ...

    def exists(self, name: str) -> bool: ...

    def boot(self, name: str, progress: Progress) -> FreshHost: ...

    def destroy(self, name: str, progress: Progress) -> None: ...


@dataclass(frozen=True)
class DrillRequest:
    inventory: Path
    source: str | None = None
    lab_host: str = DEFAULT_LAB_HOST
    keep_host: bool = False
    repository_path: str | None = None


@dataclass(frozen=True)
class DrillPlan:
    """A request checked against the inventory and the lab: safe to run."""

    inventory: Path
    source: InventoryHost
    lab_host: str
    keep_host: bool
    repository_path: str | None


def plan_drill(
    request: DrillRequest,
    hosts: Sequence[InventoryHost],
    machines: DrillHosts,
) -> DrillPlan:
    """Check the request against the inventory and the hosts `machines` already has, which a
    drill must never boot over nor destroy."""
    sources = [h for h in hosts if BACKUP_GROUP in h.groups]
    if not sources:
        raise BackupError(f"inventory {request.inventory} has no host in the {BACKUP_GROUP} group")
    if request.source is None:
        source = sources[0]
    else:
        matching = [h for h in sources if h.name == request.source]
        if not matching:
            raise BackupError(
                f"--source {request.source!r} is not a backup host of {request.inventory} "
                f"(backup hosts: {', '.join(h.name for h in sources)})"
            )
        source = matching[0]
    # A provider's repository (sftp, s3) is read with the source's own credentials; the
    # inventory's target only when the source backs up there.
    kind = destination_kind(source, hosts)
    if kind not in {"sftp", "s3"} and not any(TARGET_GROUP in h.groups for h in hosts):
        raise BackupError(
            f"inventory {request.inventory} has no host in the {TARGET_GROUP} group and "
            f"{source.name} backs up to no provider (backup_destination): nowhere to "
            "restore from"
        )
    machines.check_name(request.lab_host)
    taken = set(machines.taken()) | {h.name for h in hosts}
    if request.lab_host in taken:
        raise BackupError(
            f"--lab-host {request.lab_host!r} is a host of the lab or of the inventory: the "
            "drill needs a temporary host of its own (it is destroyed afterwards), e.g. drill1"
        )
    path = request.repository_path
    if path is not None:
        # The source's account on the target serves its own repository, append-only, and
        # nothing else: a copy elsewhere is out of its reach (and of the drill host's).
        raise BackupError(
            f"--repository-path {path!r}: the source's backup account serves only its own "
            "repository (append-only); restore a copy with the operators' identity "
            "(docs/backup.md, 'Restoring a copy of a repository')"
        )
    return DrillPlan(request.inventory, source, request.lab_host, request.keep_host, path)


# ---------------------------------------------------------------------------- the report


def _seconds(step: Any) -> float | None:
    """A step's time: its `seconds`, or Ansible's command `delta` ("0:01:02.345678")."""
    if not isinstance(step, dict):
        return None
    if isinstance(step.get("seconds"), int | float):
        return float(step["seconds"])
    delta = step.get("delta")
    if not isinstance(delta, str) or delta.count(":") != 2:
        return None
    hours, minutes, seconds = delta.split(":")
    try:
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


@dataclass(frozen=True)
class PostgresProof:
    databases: int
    tables: int
    rows: int
    problems: tuple[str, ...]


@dataclass(frozen=True)
class FilesProof:
    files: int
    bytes: int
    problems: tuple[str, ...]


def _json_object(text: Any) -> dict[str, Any] | None:
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _count(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _problems(data: dict[str, Any], what: str) -> tuple[str, ...]:
    found = [str(p) for p in data.get("differences") or []]
    if data.get("ok") is not True and not found:
        found.append(f"{what} did not report ok")
    return tuple(found)


def parse_postgres_proof(text: Any) -> PostgresProof | None:
    """The agent's verify-postgresql report: {"ok", "tables", "rows", "differences",
    "databases": {db: [per-table rows]}}; None when it is not one (the step never ran)."""
    data = _json_object(text)
    if data is None:
        return None
    databases = data.get("databases")
    return PostgresProof(
        databases=len(databases) if isinstance(databases, dict) else 0,
        tables=_count(data, "tables"),
        rows=_count(data, "rows"),
        problems=_problems(data, "verify-postgresql"),
    )


def parse_files_proof(text: Any) -> FilesProof | None:
    """The agent's verify-files report: {"ok", "files", "bytes", "differences"}."""
    data = _json_object(text)
    if data is None:
        return None
    return FilesProof(
        files=_count(data, "files"),
        bytes=_count(data, "bytes"),
        problems=_problems(data, "verify-files"),
    )


@dataclass(frozen=True)
class LoginProof:
    user: str
    realm: str
    preferred_username: str
    tenant_realm: str
    tenant_admin: str
    tenant_admin_found: bool

    @property
    def ok(self) -> bool:
        return self.preferred_username == self.user and self.tenant_admin_found


@dataclass(frozen=True)
class DrillReport:
    source: str
    lab_host: str
    repository: str
    snapshot: Snapshot | None
    backup_age: timedelta | None  # from the snapshot to the start of the restore
    steps: dict[str, float]  # seconds per step of the playbook
    postgres: PostgresProof | None
    files: FilesProof | None
    login: LoginProof | None
    failure: str | None
    keycloak_skipped: str | None = None  # why no login was tried (no Keycloak on the source)
    total_seconds: float = 0.0
    log: Path | None = None

    @property
    def restore_seconds(self) -> float | None:
        return self.steps.get("restore")

    @property
    def problems(self) -> list[str]:
        """Everything that keeps the drill from proving the backup (empty: proved)."""
        found = [self.failure] if self.failure else []
        if self.snapshot is None:
            found.append("no snapshot was restored")
        if self.postgres is None:
            found.append("no PostgreSQL verification report")
        elif self.postgres.problems:
            found.append("PostgreSQL differs: " + "; ".join(self.postgres.problems[:5]))
        elif not self.postgres.tables:
            found.append("PostgreSQL verification covered no table")
        if self.files is None:
            found.append("no file verification report")
        elif self.files.problems:
            found.append("files differ: " + "; ".join(self.files.problems[:5]))
        elif not self.files.files:
            found.append("file verification covered no file")
        if self.login is None:
            if self.keycloak_skipped is None:
                found.append("no Keycloak login was made")
        elif not self.login.ok:
            found.append(
                f"Keycloak login as {self.login.user} gave {self.login.preferred_username!r}"
                + (
                    ""
                    if self.login.tenant_admin_found
                    else f"; {self.login.tenant_admin or self.login.tenant_realm} absent"
                )
            )
        # A failed step explains the missing proofs after it: say it alone.
        return [self.failure] if self.failure else found

    @property
    def ok(self) -> bool:
        return not self.problems


def read_report(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        return {}
    except json.JSONDecodeError as exc:
        raise BackupError(f"{path}: the drill's report is not JSON ({exc.msg})") from None
    return data if isinstance(data, dict) else {}


def build_report(
    data: dict[str, Any], *, source: str, lab_host: str, playbook_failure: str | None
) -> DrillReport:
    """The drill's outcome from the playbook's drill.json (possibly partial or absent)."""
    steps: dict[str, float] = {}
    for name, step in (data.get("steps") or {}).items():
        seconds = _seconds(step)
        if seconds is not None:
            steps[str(name)] = seconds
    snapshot = None
    if isinstance(data.get("snapshot"), dict):
        (snapshot,) = parse_snapshots([data["snapshot"]], "drill.json")
    backup_age = None
    if snapshot is not None and data.get("restore_started_at"):
        backup_age = parse_time(data["restore_started_at"], "drill.json") - snapshot.time
    outputs = data.get("outputs") or {}
    login = None
    keycloak = data.get("keycloak")
    if isinstance(keycloak, dict) and keycloak.get("user"):
        login = LoginProof(
            user=str(keycloak["user"]),
            realm=str(keycloak.get("realm") or "master"),
            preferred_username=str(keycloak.get("preferred_username") or ""),
            tenant_realm=str(keycloak.get("tenant_realm") or ""),
            tenant_admin=str(keycloak.get("tenant_admin") or ""),
            tenant_admin_found=keycloak.get("tenant_admin_found") is True,
        )
    skipped = None
    if isinstance(keycloak, dict) and keycloak.get("skipped"):
        skipped = str(keycloak["skipped"])
    failure = None
    failed = data.get("failed")
    if isinstance(failed, dict):
        message = " ".join(str(failed.get("message") or "no message").split())
        failure = f"step '{failed.get('step') or '?'}' failed: {message[-600:]}"
    elif playbook_failure:
        failure = playbook_failure
    return DrillReport(
        source=str(data.get("source") or source),
        lab_host=lab_host,
        repository=str(data.get("repository") or ""),
        snapshot=snapshot,
        backup_age=backup_age,
        steps=steps,
        postgres=parse_postgres_proof(outputs.get("verify_postgresql")),
        files=parse_files_proof(outputs.get("verify_files")),
        login=login,
        failure=failure,
        keycloak_skipped=skipped,
    )


# ---------------------------------------------------------------------------- running


def drill_inventory(name: str, address: str, ssh_key: Path, known_hosts: Path) -> str:
    """A one-host inventory for the drill host, reached like the lab's own hosts."""
    body = {
        "all": {
            "children": {
                DRILL_GROUP: {
                    "hosts": {
                        name: {
                            "ansible_host": address,
                            "ansible_user": "root",
                            "ansible_ssh_private_key_file": str(ssh_key),
                            "ansible_ssh_common_args": (
                                f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes"
                            ),
                            "ansible_python_interpreter": "/usr/bin/python3",
                        }
                    }
                }
            }
        }
    }
    return yaml.safe_dump(body, sort_keys=False)


SETTINGS_STEP = "Require the agent's settings from the previous play"


def playbook_errors(lines: Sequence[str]) -> list[str]:
    """Ansible's error lines ([ERROR]: ..., fatal: ... UNREACHABLE), in order."""
    found = []
    for line in lines:
        text = line.strip()
        if text.startswith(("[ERROR]", "ERROR!")) or (
            text.startswith("fatal:") and "UNREACHABLE!" in text
        ):
            found.append(" ".join(text.split())[:600])
    return found


def run_drill(plan: DrillPlan, machines: DrillHosts, progress: Progress = _quiet) -> DrillReport:
    """Boot the drill host, run the playbook, read its report; destroy the host unless kept.

    The host is destroyed first if a leftover of that name exists, so it is always fresh.
    """
    from educloud.deploy import run_playbook

    start = time.monotonic()
    if machines.exists(plan.lab_host):
        progress(f"{plan.lab_host}: destroying the leftover host, for a fresh one")
        machines.destroy(plan.lab_host, progress)
    workdir = Path(tempfile.mkdtemp(prefix="educloud-drill-"))
    workdir.chmod(0o700)
    log_path = workdir / "ansible.log"
    try:
        progress(f"{plan.lab_host}: booting a fresh host")
        host = machines.boot(plan.lab_host, progress)
        inventory = workdir / "drill-inventory.yml"
        inventory.write_text(
            drill_inventory(host.name, host.address, host.ssh_key, host.known_hosts)
        )
        variables: dict[str, str] = {
            "backup_drill_source": plan.source.name,
            "backup_drill_report_dir": str(workdir),
        }
        if plan.repository_path:
            variables["backup_drill_repository_path"] = plan.repository_path
        lines: list[str] = []
        with log_path.open("w", encoding="utf-8") as log:

            def on_line(line: str) -> None:
                lines.append(line)
                log.write(line)
                if line.startswith("TASK ["):
                    progress(line.strip().removeprefix("TASK [").split("]", 1)[0])

            result = run_playbook(
                PLAYBOOK,
                plan.inventory,
                extra_args=["-i", str(inventory), "-e", json.dumps(variables)],
                on_line=on_line,
            )
        data = read_report(workdir / REPORT_FILE)
        errors = playbook_errors(lines)
        playbook_failure = None
        if not result.ok:
            playbook_failure = (
                f"{PLAYBOOK} failed (exit {result.returncode}): "
                f"{errors[-1] if errors else 'see the log'}"
            )
        report = build_report(
            data, source=plan.source.name, lab_host=plan.lab_host, playbook_failure=playbook_failure
        )
        if report.failure and SETTINGS_STEP in report.failure and errors:
            # The drill host only knows that the play before it failed: say why it did.
            report = replace(report, failure=f"{report.failure}; first error: {errors[0]}")
    finally:
        if not plan.keep_host:
            progress(f"{plan.lab_host}: destroying the drill host")
            machines.destroy(plan.lab_host, _quiet)
    total = time.monotonic() - start
    kept_log = None
    if report.ok:
        log_path.unlink(missing_ok=True)
        (workdir / REPORT_FILE).unlink(missing_ok=True)
        (workdir / "drill-inventory.yml").unlink(missing_ok=True)
        workdir.rmdir()
    else:
        kept_log = log_path
    return replace(report, total_seconds=total, log=kept_log)


def format_age(delta: timedelta | None) -> str:
    if delta is None:
        return "unknown"
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "0 s"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {seconds} s"
    return f"{seconds} s"


def snapshot_line(snapshot: Snapshot | None) -> str:
    if snapshot is None:
        return "none"
    return f"{snapshot.short_id} of {snapshot.time:%Y-%m-%d %H:%M:%S} UTC"
