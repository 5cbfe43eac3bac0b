"""Retention of append-only repositories (C7), under the administrators' identity.

A backup host's key may only append to its repository (the backup_target role's forced
command, `rclone serve restic --stdio --append-only`): its nightly run cannot forget nor
prune. The operators do, from their machine (docs/decisions/0014-append-only-backups.md):

- restic runs here (Debian's package), never on the target, which holds no password;
- its storage is the target reached as Ansible reaches it (root over SSH, from the
  administrators' networks), serving the client's repository as the client's account
  (`runuser`), without --append-only;
- the repository password is read from the backup host (root over SSH) into restic's
  memory (RESTIC_PASSWORD_COMMAND): never written on this machine;
- the keep horizons come from policies/retention.yml, never from the (possibly compromised)
  backup host; a snapshot dated in the future stops the run, since restic's
  --keep-within counts from the newest snapshot and a forged one would expire them all.

`plan` is a dry run (`restic forget --dry-run --json`); `apply` forgets and prunes.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from educloud import policy
from educloud.backup.remote import TARGET_GROUP
from educloud.backup.status import BackupError, Snapshot, parse_snapshots
from educloud.deployment.inventory import InventoryHost
from educloud.remote import ssh_command

PASSWORD_FILE = "/etc/educloud/backup/repository-password"  # noqa: S105 - a path
TAG = "educloud"
ACCOUNT_PREFIX = "backup-"
REPOSITORIES_DIR = "/srv/educloud-backup/repos"
# A snapshot further in the future than this stops the run (clock skew aside).
FUTURE_TOLERANCE = timedelta(hours=1)


@dataclass(frozen=True)
class Keep:
    daily_days: int
    weekly_days: int
    monthly_days: int

    @classmethod
    def from_policy(cls, category: Mapping[str, Any]) -> Keep:
        days = policy.backup_keep_days(category["keep"])
        return cls(int(days["daily"]), int(days["weekly"]), int(days["monthly"]))


@dataclass(frozen=True)
class Storage:
    """Where a backup host's repository is, and how the administrators reach it."""

    client: InventoryHost
    target: InventoryHost
    account: str
    directory: str

    def rclone_program(self) -> str:
        serve = ["rclone", "serve", "restic", "--stdio", "--config", "/dev/null", self.directory]
        return shlex.join(ssh_command(self.target, ["runuser", "-u", self.account, "--", *serve]))

    def password_command(self) -> str:
        return shlex.join(ssh_command(self.client, ["cat", PASSWORD_FILE]))


def _text(value: Any, default: str) -> str:
    """An inventory value, unless it is absent or still a template (a role default)."""
    return value if isinstance(value, str) and value and "{{" not in value else default


def destination_kind(client: InventoryHost, hosts: Sequence[InventoryHost]) -> str:
    """The client's backup_destination (roles/backup): target, sftp or s3. Its default, as
    the role's: target when backup_target_host names a host (by default the first of the
    backup_target group)."""
    has_target = bool(_text(client.variables.get("backup_target_host"), "")) or any(
        TARGET_GROUP in h.groups for h in hosts
    )
    return _text(client.variables.get("backup_destination"), "target" if has_target else "")


def storage_of(client: InventoryHost, hosts: Sequence[InventoryHost]) -> Storage:
    """The client's target (backup_target_host, or the first backup_target host), its
    account and repository directory, from the inventory: never from the client's files."""
    targets = [h for h in hosts if TARGET_GROUP in h.groups]
    wanted = _text(client.variables.get("backup_target_host"), targets[0].name if targets else "")
    target = next((h for h in targets if h.name == wanted), None)
    if target is None:
        raise BackupError(
            f"{client.name}: its backup target {wanted or '(none)'} is not a host of the "
            f"{TARGET_GROUP} group"
        )
    prefix = _text(target.variables.get("backup_target_account_prefix"), ACCOUNT_PREFIX)
    base = _text(target.variables.get("backup_target_base_dir"), "")
    default_dir = f"{base}/repos" if base else REPOSITORIES_DIR
    directory = _text(target.variables.get("backup_target_repositories_dir"), default_dir)
    return Storage(client, target, f"{prefix}{client.name}", f"{directory}/{client.name}")


@dataclass(frozen=True)
class RetentionPlan:
    host: str
    keep: Keep
    snapshots: tuple[Snapshot, ...]
    removed: tuple[Snapshot, ...]
    future: tuple[Snapshot, ...]

    @property
    def kept(self) -> tuple[Snapshot, ...]:
        gone = {s.id for s in self.removed}
        return tuple(s for s in self.snapshots if s.id not in gone)

    @property
    def refusal(self) -> str | None:
        """Why this plan must not be applied (None: it may)."""
        if self.future:
            dated = ", ".join(f"{s.short_id} ({s.time:%Y-%m-%d %H:%M} UTC)" for s in self.future)
            return (
                f"{self.host} : instantanés datés dans le futur ({dated}) : un hôte compromis "
                "peut en forger pour faire oublier les vrais ; à examiner avant tout oubli"
            )
        if self.snapshots and not self.kept:
            return f"{self.host} : l'oubli ne garderait aucun instantané"
        return None


def forget_argv(keep: Keep, host: str, *, dry_run: bool) -> list[str]:
    argv = [
        "forget", "--host", host, "--tag", TAG, "--group-by", "host,tags",
        "--keep-within-daily", f"{keep.daily_days}d",
        "--keep-within-weekly", f"{keep.weekly_days}d",
        "--keep-within-monthly", f"{keep.monthly_days}d",
        "--json",
    ]  # fmt: skip
    return [*argv, "--dry-run"] if dry_run else [*argv, "--prune", "--max-unused", "0"]


def removed_ids(forget_json: Any) -> set[str]:
    """The snapshot ids `restic forget --json` lists under "remove", every group."""
    groups = forget_json if isinstance(forget_json, list) else []
    return {
        str(s.get("id"))
        for g in groups
        if isinstance(g, dict)
        for s in g.get("remove") or []
        if isinstance(s, dict)
    }


def make_plan(
    host: str, keep: Keep, snapshots: tuple[Snapshot, ...], removed: set[str], now: datetime
) -> RetentionPlan:
    return RetentionPlan(
        host=host,
        keep=keep,
        snapshots=snapshots,
        removed=tuple(s for s in snapshots if s.id in removed),
        future=tuple(s for s in snapshots if s.time > now + FUTURE_TOLERANCE),
    )


class Restic:
    """restic on this machine against one client's repository, as the administrators."""

    def __init__(self, storage: Storage, *, program: str = "restic") -> None:
        self.storage = storage
        self.program = program

    def run(self, *args: str, timeout: float = 6 * 3600) -> str:
        if shutil.which(self.program) is None:
            raise BackupError("restic est absent de ce poste : apt-get install restic")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
        env["RESTIC_PASSWORD_COMMAND"] = self.storage.password_command()
        argv = [
            self.program, "-r", "rclone:",
            "-o", f"rclone.program={self.storage.rclone_program()}", "-o", "rclone.args=",
            *args,
        ]  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="educloud-restic-") as cache:
            env["RESTIC_CACHE_DIR"] = cache
            try:
                done = subprocess.run(
                    argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
                )
            except subprocess.TimeoutExpired:
                raise BackupError(
                    f"{self.storage.client.name}: restic {args[0]} trop long"
                ) from None
        if done.returncode != 0:
            said = " ".join(done.stderr.split())[-400:]
            raise BackupError(f"{self.storage.client.name}: restic {args[0]} a échoué : {said}")
        return done.stdout

    def snapshots(self) -> tuple[Snapshot, ...]:
        out = self.run("snapshots", "--json", "--host", self.storage.client.name, "--tag", TAG)
        return parse_snapshots(json.loads(out or "[]"), f"{self.storage.client.name}: snapshots")

    def forget(self, keep: Keep, *, dry_run: bool) -> set[str]:
        out = self.run(*forget_argv(keep, self.storage.client.name, dry_run=dry_run))
        # The groups, one JSON line; prune's progress lines ("[0:00] 100%") are not JSON.
        for line in out.splitlines():
            if line.startswith(("[{", "[]")):
                return removed_ids(json.loads(line))
        return set()


def plan(restic: Restic, keep: Keep, now: datetime) -> RetentionPlan:
    snapshots = restic.snapshots()
    return make_plan(
        restic.storage.client.name, keep, snapshots, restic.forget(keep, dry_run=True), now
    )


def apply(restic: Restic, keep: Keep, now: datetime) -> RetentionPlan:
    """Forget and prune, after a dry run that shows nothing suspicious."""
    planned = plan(restic, keep, now)
    if planned.refusal:
        raise BackupError(planned.refusal)
    if planned.removed:
        restic.forget(keep, dry_run=False)
    return planned
