#!/usr/bin/python3
"""educloud-backup: this server's encrypted backups with restic (issue #8, charter C1 C7 C10).

Installed by the backup role as /usr/local/sbin/educloud-backup and run as root by
educloud-backup.service (a systemd timer); the restore drill and an operator on an incident
run its restore side (docs/backup.md). Reads /etc/educloud/backup/backup.json, which holds
no secret: restic reads the repository password from `password_file` (RESTIC_PASSWORD_FILE)
and ssh its key from `ssh_key`; neither is ever printed nor logged.

The repository is reached with restic's rclone backend over SSH (`rclone:`): the target's
forced command serves this host's repository append-only (`rclone serve restic --stdio
--append-only`), so this host adds snapshots and can delete none. With `append_only`, a run
applies no retention: the operators' `educloud backup forget` does, under another identity.
A destination outside the inventory (a provider's SFTP account, `sftp:`, or S3-compatible
object storage, `s3:https://`, its keys in `s3.credentials_file`) cannot be made
append-only from here: there the nightly run applies the retention itself.

`run`: Nextcloud maintenance mode on (when configured) for the whole backup; PostgreSQL
globals, then per database a `pg_dump -Fc` and the table manifest (rows and checksum of every
user table) taken in one exported snapshot; a SHA-256 manifest of the backed-up files;
`restic backup`; `restic forget --prune` by the retention policy unless the repository is
append-only; state_dir/status.json.

Only the standard library and psycopg2 (Debian's python3-psycopg2), imported when a
PostgreSQL step runs: a fresh host can restore files before PostgreSQL is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import random
import shlex
import shutil
import smtplib
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from fnmatch import fnmatchcase
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

if TYPE_CHECKING:
    from psycopg2 import extensions as pgext

DEFAULT_CONFIG = Path("/etc/educloud/backup/backup.json")
FILES_MANIFEST = "files-manifest.json"
PG_DIR = "postgresql"
PG_MANIFEST = "manifest.json"
PG_GLOBALS = "globals.sql"
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
# Fixed so that a row's text (hence its checksum) is the same at backup time and after a
# restore on another host, whatever the server's or the role's defaults.
SESSION_SETTINGS = (
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
    ("lc_monetary", "C"),
)
JOURNAL_LINES = 40
RUN_FIELDS = (
    "started", "finished", "ok", "error", "snapshot_id", "duration_s", "files_new",
    "data_added_bytes",
)  # fmt: skip
_T = TypeVar("_T")

Log = Callable[[str], None]


class BackupError(Exception):
    """A step failed; the message names the step and never carries a secret."""


class ConfigError(BackupError):
    """backup.json is missing or malformed."""


# -- configuration -----------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    address: str
    port: int
    user: str


@dataclass(frozen=True)
class S3Settings:
    credentials_file: Path
    """AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=... lines (0600 root): the object
    storage's keys, read into restic's environment, never into backup.json."""
    cacert: Path | None
    """PEM of the CA that signed the endpoint's certificate (--cacert); None: the system's."""


@dataclass(frozen=True)
class PostgresSettings:
    enabled: bool
    connect: dict[str, str | int]
    """libpq keywords (host, port, user) of the local cluster, as a superuser."""
    os_user: str | None
    """The OS user the PostgreSQL tools and the connection run as (peer authentication)."""
    primary_only: bool = False
    """A member of a replicated cluster (Patroni): dump the databases only while this
    server is the primary; a replica's run backs up its files alone."""


@dataclass(frozen=True)
class NextcloudSettings:
    occ: str
    user: str
    php: str


@dataclass(frozen=True)
class Keep:
    daily_days: int
    weekly_days: int
    monthly_days: int
    retention_days: int


@dataclass(frozen=True)
class MailSettings:
    host: str
    port: int
    starttls: bool
    sender: str
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class Config:
    host: str
    repository: str
    target: Target | None
    password_file: Path
    ssh_key: Path
    known_hosts: Path
    cache_dir: Path
    staging_dir: Path
    state_dir: Path
    paths: tuple[Path, ...]
    exclude: tuple[str, ...]
    postgresql: PostgresSettings
    nextcloud: NextcloudSettings | None
    keep: Keep
    tag: str
    mail: MailSettings | None
    restic: str
    append_only: bool = False
    """The target refuses deletions: retention is the operators' (educloud backup forget)."""
    s3: S3Settings | None = None

    @property
    def sftp(self) -> bool:
        return self.repository.startswith("sftp:")

    @property
    def object_storage(self) -> bool:
        return self.repository.startswith("s3:")

    @property
    def over_ssh(self) -> bool:
        """The rclone backend through the target's forced command, or SFTP."""
        return self.sftp or self.repository.startswith("rclone:")


def _field(data: Mapping[str, Any], key: str, kind: type[_T], where: str) -> _T:
    value = data.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where}{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _optional(data: Mapping[str, Any], key: str, kind: type[_T], where: str, default: _T) -> _T:
    return default if data.get(key) is None else _field(data, key, kind, where)


def _section(data: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected an object")
    return value


def _strings(data: Mapping[str, Any], key: str, where: str = "") -> tuple[str, ...]:
    values = _optional(data, key, list, where, [])
    if not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{where}{key}: expected a list of strings")
    return tuple(values)


def _absolute(value: str, key: str) -> Path:
    path = Path(value)
    if not path.is_absolute():
        raise ConfigError(f"{key}: expected an absolute path, got {value}")
    return path


def _parse_postgresql(data: dict[str, Any] | None) -> PostgresSettings:
    data = data or {}
    connect = _optional(data, "connect", dict, "postgresql.", {"user": "postgres"})
    if not set(connect) <= {"host", "port", "user"}:
        raise ConfigError("postgresql.connect: only host, port and user (peer authentication)")
    if not all(isinstance(v, str | int) for v in connect.values()):
        raise ConfigError("postgresql.connect: expected string or integer values")
    os_user = data.get("os_user", "postgres")
    if os_user is not None and not isinstance(os_user, str):
        raise ConfigError("postgresql.os_user: expected a user name or null")
    return PostgresSettings(
        enabled=_optional(data, "enabled", bool, "postgresql.", False),
        connect=dict(connect),
        os_user=os_user,
        primary_only=_optional(data, "primary_only", bool, "postgresql.", False),
    )


def _parse_nextcloud(data: dict[str, Any] | None) -> NextcloudSettings | None:
    if data is None:
        return None
    return NextcloudSettings(
        occ=_field(data, "occ", str, "nextcloud."),
        user=_optional(data, "user", str, "nextcloud.", "www-data"),
        php=_optional(data, "php", str, "nextcloud.", "php"),
    )


def _parse_keep(data: dict[str, Any] | None) -> Keep:
    if data is None:
        raise ConfigError("keep: missing")
    keep = Keep(**{k: _field(data, k, int, "keep.") for k in Keep.__dataclass_fields__})
    longest = max(keep.daily_days, keep.weekly_days, keep.monthly_days)
    if min(keep.daily_days, keep.weekly_days, keep.monthly_days) < 1:
        raise ConfigError("keep: every period must be at least one day")
    if longest > keep.retention_days:
        raise ConfigError(f"keep: {longest} days exceed retention_days {keep.retention_days}")
    return keep


def _parse_mail(data: dict[str, Any] | None) -> MailSettings | None:
    if data is None:
        return None
    return MailSettings(
        host=_field(data, "host", str, "mail."),
        port=_optional(data, "port", int, "mail.", 25),
        starttls=_optional(data, "starttls", bool, "mail.", False),
        sender=_field(data, "sender", str, "mail."),
        recipients=_strings(data, "recipients", "mail."),
    )


def _parse_target(data: dict[str, Any] | None) -> Target | None:
    if data is None:
        return None
    return Target(
        address=_field(data, "address", str, "target."),
        port=_optional(data, "port", int, "target.", 22),
        user=_field(data, "user", str, "target."),
    )


def _parse_s3(data: dict[str, Any] | None) -> S3Settings | None:
    if data is None:
        return None
    cacert = _optional(data, "cacert", str, "s3.", "")
    return S3Settings(
        credentials_file=_absolute(
            _field(data, "credentials_file", str, "s3."), "s3.credentials_file"
        ),
        cacert=_absolute(cacert, "s3.cacert") if cacert else None,
    )


def parse_config(data: Mapping[str, Any]) -> Config:
    repository = _field(data, "repository", str, "")
    target = _parse_target(_section(data, "target"))
    ssh_key = _optional(data, "ssh_key", str, "", "")
    known_hosts = _optional(data, "known_hosts", str, "", "")
    remote = repository.startswith(("sftp:", "rclone:"))
    if remote and (target is None or not ssh_key or not known_hosts):
        raise ConfigError(
            "target, ssh_key and known_hosts: required for an sftp: or rclone: repository"
        )
    s3 = _parse_s3(_section(data, "s3"))
    if repository.startswith("s3:") and (s3 is None or not repository.startswith("s3:https://")):
        raise ConfigError(
            "s3: required for an s3: repository, which must be s3:https://... (TLS only)"
        )
    staging = _absolute(_field(data, "staging_dir", str, ""), "staging_dir")
    if len(staging.parts) < 3:
        raise ConfigError(f"staging_dir: {staging} is too close to / to be emptied on each run")
    return Config(
        host=_field(data, "host", str, ""),
        repository=repository,
        target=target,
        password_file=_absolute(_field(data, "password_file", str, ""), "password_file"),
        ssh_key=Path(ssh_key),
        known_hosts=Path(known_hosts),
        cache_dir=_absolute(_field(data, "cache_dir", str, ""), "cache_dir"),
        staging_dir=staging,
        state_dir=_absolute(_field(data, "state_dir", str, ""), "state_dir"),
        paths=tuple(_absolute(p, "paths") for p in _strings(data, "paths")),
        exclude=_strings(data, "exclude"),
        postgresql=_parse_postgresql(_section(data, "postgresql")),
        nextcloud=_parse_nextcloud(_section(data, "nextcloud")),
        keep=_parse_keep(_section(data, "keep")),
        tag=_optional(data, "tag", str, "", "educloud"),
        mail=_parse_mail(_section(data, "mail")),
        restic=_optional(data, "restic", str, "", "restic"),
        append_only=_optional(data, "append_only", bool, "", False),
        s3=s3,
    )


def load_config(path: Path) -> Config:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return parse_config(data)


# -- processes ---------------------------------------------------------------------------


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def as_user(user: str | None, argv: Sequence[str]) -> list[str]:
    """argv run as `user` (runuser) when this process is root and user is another one."""
    if user is None or os.geteuid() != 0 or user == "root":
        return list(argv)
    return ["runuser", "-u", user, "--", *argv]


@contextlib.contextmanager
def effective_user(user: str | None) -> Iterator[None]:
    """Act as `user` (effective uid/gid) for the block: peer authentication on PostgreSQL's
    socket checks the uid of the process that connects, at connect time."""
    if user is None or os.geteuid() != 0 or user == "root":
        yield
        return
    entry = pwd.getpwnam(user)
    os.setegid(entry.pw_gid)
    os.seteuid(entry.pw_uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def run_checked(
    argv: Sequence[str],
    what: str,
    *,
    env: Mapping[str, str] | None = None,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
) -> str:
    """Run argv; its stdout (text) unless redirected. BackupError naming `what` on failure."""
    try:
        result = subprocess.run(
            list(argv),
            env=dict(env) if env is not None else None,
            stdin=stdin,
            stdout=stdout if stdout is not None else subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd="/",  # another user's tools complain about root's working directory
            check=False,
        )
    except OSError as error:
        raise BackupError(f"{what}: cannot run {argv[0]}: {error.strerror}") from error
    stderr = result.stderr.decode(errors="replace")
    if result.returncode != 0:
        raise BackupError(f"{what} failed (exit {result.returncode}): {tail(stderr)}")
    return result.stdout.decode(errors="replace") if stdout is None else ""


# -- restic ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invocation:
    argv: list[str]
    env: dict[str, str]


def ssh_argv(config: Config) -> list[str]:
    """ssh to the target with our key, the pinned host key, no prompt, no command."""
    assert config.target is not None
    target = config.target
    # No ssh_config (-F /dev/null: no Host block, ProxyCommand nor ProxyJump can send the
    # connection elsewhere) and no system-wide known hosts: our pinned key only.
    return [
        "ssh", "-F", "/dev/null", "-i", str(config.ssh_key),
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", f"UserKnownHostsFile={config.known_hosts}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
        "-p", str(target.port),
        f"{target.user}@{target.address}",
    ]  # fmt: skip


def sftp_command(config: Config) -> str:
    """The ssh command restic's SFTP backend runs (the former layout)."""
    return shlex.join([*ssh_argv(config), "-s", "sftp"])


def rclone_program(config: Config) -> str:
    """The program restic's rclone backend runs: ssh to the target, whose forced command
    (`rclone serve restic --stdio --append-only` on this host's repository) answers.
    No pty (-T): the channel carries restic's protocol, and no command is sent."""
    argv = ssh_argv(config)
    return shlex.join([argv[0], "-T", *argv[1:]])


S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def s3_credentials(path: Path) -> dict[str, str]:
    """The object storage's keys from their file (KEY=value lines). The values never
    reach a message: a malformed file is named by its line numbers only."""
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise ConfigError(f"cannot read the S3 credentials {path}: {error.strerror}") from error
    found: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or key.strip() not in S3_KEYS or not value.strip():
            raise ConfigError(
                f"{path}: line {number} is not AWS_ACCESS_KEY_ID= or AWS_SECRET_ACCESS_KEY="
            )
        found[key.strip()] = value.strip()
    missing = [key for key in S3_KEYS if key not in found]
    if missing:
        raise ConfigError(f"{path}: missing {', '.join(missing)}")
    return found


def restic_invocation(config: Config, *args: str) -> Invocation:
    """argv and environment of one restic command. The password stays in its file."""
    argv = [config.restic]
    if config.sftp:
        argv += ["-o", f"sftp.command={sftp_command(config)}"]
    elif config.over_ssh:
        # No arguments of ours reach the target: its forced command names the repository.
        argv += ["-o", f"rclone.program={rclone_program(config)}", "-o", "rclone.args="]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "AWS_"))}
    if config.object_storage and config.s3 is not None:
        env.update(s3_credentials(config.s3.credentials_file))
        if config.s3.cacert is not None:
            argv += ["--cacert", str(config.s3.cacert)]
    env.update(
        RESTIC_REPOSITORY=config.repository,
        RESTIC_PASSWORD_FILE=str(config.password_file),
        RESTIC_CACHE_DIR=str(config.cache_dir),
    )
    return Invocation(argv=[*argv, *args], env=env)


def _run_restic(config: Config, args: Sequence[str], *, text: bool) -> Any:
    config.cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    call = restic_invocation(config, *args)
    try:
        return subprocess.run(call.argv, env=call.env, capture_output=True, text=text, check=False)
    except OSError as error:
        raise BackupError(f"cannot run {config.restic}: {error.strerror}") from error


def restic(config: Config, *args: str) -> subprocess.CompletedProcess[str]:
    """Run restic, capturing its output (the caller decides what a failure means)."""
    done: subprocess.CompletedProcess[str] = _run_restic(config, args, text=True)
    return done


def restic_bytes(config: Config, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run restic, capturing its output as bytes (a pack's raw content)."""
    done: subprocess.CompletedProcess[bytes] = _run_restic(config, args, text=False)
    return done


def restic_checked(config: Config, what: str, *args: str) -> str:
    result = restic(config, *args)
    if result.returncode != 0:
        raise BackupError(f"restic {what} failed (exit {result.returncode}): {tail(result.stderr)}")
    return result.stdout


def repository_missing(stderr: str) -> bool:
    """restic 0.14 says "Is there a repository at the following location?"; later
    versions "repository does not exist"."""
    return "Is there a repository at" in stderr or "repository does not exist" in stderr


def init_repository(config: Config) -> bool:
    """Create the repository unless it exists; True when it was created.
    Any other failure (wrong password, unreachable target) is an error, never a new init."""
    probe = restic(config, "cat", "config")
    if probe.returncode == 0:
        return False
    if not repository_missing(probe.stderr):
        raise BackupError(f"restic cannot open the repository: {tail(probe.stderr)}")
    restic_checked(config, "init", "init")
    return True


def selection(config: Config) -> list[str]:
    """This host's snapshots: forget, snapshots and restore never touch another's."""
    return ["--host", config.host, "--tag", config.tag]


def unlock_stale(config: Config) -> None:
    """Remove stale locks only (a killed run's): restic 0.14 does not ignore them when it
    needs an exclusive lock (check, prune). Live locks stay (no --remove-all)."""
    restic_checked(config, "unlock", "unlock")


def backup_summary(stdout: str) -> dict[str, Any]:
    """The final {"message_type": "summary", ...} line of `restic backup --json`."""
    for line in reversed(stdout.splitlines()):
        with contextlib.suppress(ValueError):
            message = json.loads(line)
            if isinstance(message, dict) and message.get("message_type") == "summary":
                return message
    raise BackupError("restic backup printed no summary")


def secret_files(config: Config) -> list[str]:
    """The files holding this host's backup secrets: never in its own snapshots, whatever
    `exclude` says (an inventory may replace the role's list)."""
    files = [config.password_file]
    files += [config.ssh_key] if config.over_ssh else []
    files += [config.s3.credentials_file] if config.s3 is not None else []
    return [str(f) for f in files]


def backup_argv(config: Config, sources: Sequence[Path]) -> list[str]:
    argv = ["backup", *selection(config), "--json", "--quiet"]
    argv += [str(p) for p in sources]
    patterns = list(config.exclude)
    patterns += [f for f in secret_files(config) if f not in patterns]
    for pattern in patterns:
        argv += ["--exclude", pattern]
    return argv


def forget_argv(config: Config) -> list[str]:
    """Time-bounded retention: nothing older than the policy survives a run. One group per
    host and tag, so a changed path list does not leave an old group outside the policy."""
    keep = config.keep
    return [
        "forget", *selection(config), "--group-by", "host,tags",
        "--keep-within-daily", f"{keep.daily_days}d",
        "--keep-within-weekly", f"{keep.weekly_days}d",
        "--keep-within-monthly", f"{keep.monthly_days}d",
        "--prune", "--max-unused", "0",
    ]  # fmt: skip


def list_snapshots(config: Config) -> list[dict[str, Any]]:
    output = restic_checked(config, "snapshots", "snapshots", "--json", *selection(config))
    found = json.loads(output or "[]")
    if not isinstance(found, list):
        raise BackupError("restic snapshots: unexpected output")
    return found


def check_repository(config: Config, read_data: bool) -> subprocess.CompletedProcess[str]:
    unlock_stale(config)
    return restic(config, "check", *(["--read-data"] if read_data else []))


def scan_packs(config: Config, patterns: Sequence[bytes], limit: int) -> dict[str, Any]:
    """Read the repository's packs as its storage holds them (`restic cat pack` prints a
    pack's raw bytes, checking only its hash) and look for each pattern in them: what a
    provider's staff or a thief of its disks would read. The patterns (known plaintext,
    and the secrets the caller passes on stdin) are named by their index only. At most
    `limit` packs, drawn at random when there are more (a listing's order would read the
    same ones every time); the count of all is reported."""
    listed = restic_checked(config, "list packs", "list", "packs").split()
    report: dict[str, Any] = {"packs": len(listed), "scanned": 0, "bytes": 0, "hits": []}
    wanted = [p for p in patterns if p]
    chosen = listed if len(listed) <= limit else random.SystemRandom().sample(listed, limit)
    for pack in chosen:
        done = restic_bytes(config, "cat", "pack", pack)
        if done.returncode != 0:
            stderr = done.stderr.decode(errors="replace")
            raise BackupError(f"restic cat pack {pack} failed: {tail(stderr)}")
        report["scanned"] += 1
        report["bytes"] += len(done.stdout)
        report["hits"] += [
            {"pack": pack, "pattern": index}
            for index, pattern in enumerate(wanted)
            if pattern in done.stdout
        ]
    return report


def restore_snapshot(config: Config, target: Path, snapshot: str) -> str:
    args = ["restore", snapshot, *selection(config), "--target", str(target), "--verify"]
    return restic_checked(config, "restore", *args)


# -- PostgreSQL --------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    name: str
    owner: str
    encoding: str


@dataclass(frozen=True)
class TableSum:
    rows: int
    md5: str


def pg_tool(pg: PostgresSettings, tool: str, *args: str) -> list[str]:
    """A PostgreSQL client tool on the configured cluster, as the configured OS user."""
    argv = [tool]
    for keyword, flag in (("host", "-h"), ("port", "-p"), ("user", "-U")):
        if keyword in pg.connect:
            argv += [flag, str(pg.connect[keyword])]
    return as_user(pg.os_user, [*argv, *args])


@contextlib.contextmanager
def pg_errors(what: str) -> Iterator[None]:
    """psycopg2's errors as BackupError naming the step."""
    import psycopg2

    try:
        yield
    except psycopg2.Error as error:
        raise BackupError(f"{what}: {str(error).strip()}") from error


def pg_connect(pg: PostgresSettings, dbname: str) -> pgext.connection:
    import psycopg2

    with pg_errors(f"postgresql: connect to {dbname}"), effective_user(pg.os_user):
        dsn = psycopg2.extensions.make_dsn(None, **pg.connect, dbname=dbname)
        connection = psycopg2.connect(dsn)
    connection.autocommit = True
    with connection.cursor() as cursor:
        for name, value in SESSION_SETTINGS:
            cursor.execute("SELECT set_config(%s, %s, false)", (name, value))
    return connection


def in_recovery(pg: PostgresSettings) -> bool:
    """Whether the local server is a replica (streaming from a primary)."""
    with (
        contextlib.closing(pg_connect(pg, "postgres")) as connection,
        pg_errors("postgresql: pg_is_in_recovery"),
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT pg_is_in_recovery()")
        row = cursor.fetchone()
        return bool(row and row[0])


def list_databases(pg: PostgresSettings) -> list[Database]:
    """Every database but the templates (postgres included: it may hold user tables)."""
    with (
        contextlib.closing(pg_connect(pg, "postgres")) as connection,
        pg_errors("postgresql: list databases"),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "SELECT datname, pg_get_userbyid(datdba), pg_encoding_to_char(encoding) "
            "FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname"
        )
        return [Database(*row) for row in cursor.fetchall()]


def user_tables(cursor: pgext.cursor) -> list[tuple[str, str]]:
    """(schema, table) of every ordinary table outside the system schemas, extensions'
    own tables excepted (pg_dump does not dump their rows)."""
    cursor.execute(
        "SELECT n.nspname, c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND c.relpersistence <> 't' "
        "AND n.nspname <> ALL(%s) AND n.nspname NOT LIKE 'pg\\_temp\\_%%' "
        "AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%%' "
        "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
        "AND d.objid = c.oid AND d.deptype = 'e') "
        "ORDER BY n.nspname, c.relname",
        (list(SYSTEM_SCHEMAS),),
    )
    return [(str(schema), str(table)) for schema, table in cursor.fetchall()]


def table_sum(cursor: pgext.cursor, schema: str, table: str) -> TableSum:
    """Row count and an order-independent checksum: md5 of the sorted md5s of the rows'
    text (the session settings fix that text)."""
    from psycopg2 import sql

    query = sql.SQL(
        "SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h COLLATE \"C\"), '')) "
        "FROM (SELECT md5(ROW(r.*)::text) AS h FROM {}.{} AS r) AS hashes"
    ).format(sql.Identifier(schema), sql.Identifier(table))
    cursor.execute(query)
    row = cursor.fetchone()
    assert row is not None
    return TableSum(rows=int(row[0]), md5=str(row[1]))


def table_sums(cursor: pgext.cursor) -> dict[str, TableSum]:
    return {f"{s}.{t}": table_sum(cursor, s, t) for s, t in user_tables(cursor)}


def database_sums(pg: PostgresSettings, dbname: str) -> dict[str, TableSum]:
    with (
        contextlib.closing(pg_connect(pg, dbname)) as connection,
        pg_errors(f"postgresql: {dbname}"),
        connection.cursor() as cursor,
    ):
        cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            return table_sums(cursor)
        finally:
            cursor.execute("ROLLBACK")


def run_pg_dump(pg: PostgresSettings, dbname: str, snapshot: str, file: Path) -> None:
    """pg_dump in the exported snapshot; root writes the file (the OS user may not).

    Uncompressed (-Z 0): restic compresses (repository version 2, zstd) and deduplicates
    by content-defined chunks, which a compressed dump would defeat, so each night would
    store every database whole again."""
    argv = pg_tool(pg, "pg_dump", "-Fc", "-Z", "0", f"--snapshot={snapshot}", "-d", dbname)
    with file.open("wb") as out:
        run_checked(argv, f"pg_dump {dbname}", stdout=out)


def dump_database(pg: PostgresSettings, database: Database, directory: Path) -> dict[str, Any]:
    """The dump and the table manifest of one database, both from one snapshot: the
    exporting transaction stays open while pg_dump runs and the sums are computed."""
    dump = f"{quote(database.name, safe='')}.dump"
    with (
        contextlib.closing(pg_connect(pg, database.name)) as connection,
        pg_errors(f"postgresql: {database.name}"),
        connection.cursor() as cursor,
    ):
        cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cursor.execute("SELECT pg_export_snapshot()")
        row = cursor.fetchone()
        assert row is not None
        run_pg_dump(pg, database.name, str(row[0]), directory / dump)
        sums = table_sums(cursor)
        cursor.execute("COMMIT")
    return {
        "owner": database.owner,
        "encoding": database.encoding,
        "dump": dump,
        "tables": {name: {"rows": s.rows, "md5": s.md5} for name, s in sums.items()},
    }


def dump_postgresql(pg: PostgresSettings, directory: Path, log: Log) -> dict[str, Any]:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with (directory / PG_GLOBALS).open("wb") as out:
        run_checked(pg_tool(pg, "pg_dumpall", "--globals-only"), "pg_dumpall", stdout=out)
    manifest: dict[str, Any] = {"created": now_iso(), "databases": {}}
    for database in list_databases(pg):
        entry = dump_database(pg, database, directory)
        manifest["databases"][database.name] = entry
        rows = sum(t["rows"] for t in entry["tables"].values())
        log(f"postgresql: {database.name}: {len(entry['tables'])} tables, {rows} rows")
    write_json(directory / PG_MANIFEST, manifest, 0o600)
    return manifest


def staged(config: Config, root: Path) -> Path:
    """The staging directory as restored under `root`."""
    return root / config.staging_dir.relative_to("/")


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise BackupError(f"cannot read {path}: {error}") from error
    if not isinstance(data, dict):
        raise BackupError(f"{path}: expected a JSON object")
    return data


def write_json(path: Path, data: Mapping[str, Any], mode: int) -> None:
    """Atomic write with the given mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "w") as out:
        json.dump(data, out, indent=2, sort_keys=True)
        out.write("\n")
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def restore_globals(pg: PostgresSettings, file: Path) -> None:
    """Roles and tablespaces; on a fresh cluster only the bootstrap role already exists."""
    argv = pg_tool(pg, "psql", "-X", "-q", "-d", "postgres", "-f", "-")
    with file.open("rb") as sql_in:
        result = subprocess.run(argv, stdin=sql_in, capture_output=True, cwd="/", check=False)
    superuser = str(pg.connect.get("user", "postgres"))
    errors = [
        line
        for line in result.stderr.decode(errors="replace").splitlines()
        if "ERROR:" in line and f'role "{superuser}" already exists' not in line
    ]
    if result.returncode != 0 or errors:
        detail = "\n".join(errors) or result.stderr.decode(errors="replace")
        raise BackupError(f"psql {PG_GLOBALS} failed: {tail(detail)}")


def restore_database(pg: PostgresSettings, name: str, file: Path, exists: bool) -> None:
    """pg_restore --create makes the database as it was (owner, encoding, locale, its
    grants and settings: the C10 REVOKE CONNECT); into an existing one (postgres) without."""
    target = ["-d", name] if exists else ["--create", "-d", "postgres"]
    argv = pg_tool(pg, "pg_restore", "--exit-on-error", *target)
    with file.open("rb") as dump_in:
        run_checked(argv, f"pg_restore {name}", stdin=dump_in)


def restore_postgresql(config: Config, root: Path, log: Log) -> list[str]:
    directory = staged(config, root) / PG_DIR
    manifest = read_json(directory / PG_MANIFEST)
    pg = config.postgresql
    restore_globals(pg, directory / PG_GLOBALS)
    log(f"postgresql: {PG_GLOBALS} restored")
    existing = {d.name for d in list_databases(pg)}
    restored = []
    for name, entry in sorted(manifest["databases"].items()):
        restore_database(pg, name, directory / entry["dump"], name in existing)
        log(f"postgresql: {name} restored")
        restored.append(name)
    return restored


def compare_tables(
    database: str, expected: Mapping[str, Any], actual: Mapping[str, TableSum]
) -> tuple[list[dict[str, Any]], list[str]]:
    """One report row per table, and the differences (each naming database and table)."""
    report, differences = [], []
    for name in sorted(set(expected) | set(actual)):
        want, got = expected.get(name), actual.get(name)
        row: dict[str, Any] = {"table": name, "expected": want}
        row["actual"] = {"rows": got.rows, "md5": got.md5} if got else None
        row["ok"] = want is not None and got is not None and want == row["actual"]
        report.append(row)
        if not row["ok"]:
            if want is None:
                problem = "not in the backup"
            elif got is None:
                problem = "missing"
            else:
                problem = f"rows {want['rows']} -> {got.rows}, md5 {want['md5']} -> {got.md5}"
            differences.append(f"{database}: {name}: {problem}")
    return report, differences


def verify_postgresql(config: Config, root: Path) -> dict[str, Any]:
    """Recompute every table's rows and checksum on the local cluster against the manifest."""
    manifest = read_json(staged(config, root) / PG_DIR / PG_MANIFEST)
    pg = config.postgresql
    local = {d.name for d in list_databases(pg)}
    databases: dict[str, Any] = {}
    differences: list[str] = []
    for name, entry in sorted(manifest["databases"].items()):
        if name not in local:
            differences.append(f"{name}: database missing")
            continue
        tables, found = compare_tables(name, entry["tables"], database_sums(pg, name))
        databases[name] = tables
        differences += found
    checked = [t for tables in databases.values() for t in tables]
    return {
        "ok": not differences,
        "tables": len(checked),
        "rows": sum(t["actual"]["rows"] for t in checked if t["actual"]),
        "differences": differences,
        "databases": databases,
    }


# -- files -------------------------------------------------------------------------------


def excluded(path: Path, patterns: Sequence[str]) -> bool:
    """restic's --exclude, as far as this manifest needs it: an absolute pattern matches the
    path or one of its parents; a relative one any run of its components (`*.log`, `a/b`)."""
    parts = path.parts[1:]
    runs = ["/".join(parts[i:j]) for i in range(len(parts)) for j in range(i + 1, len(parts) + 1)]
    parents = [str(p) for p in (path, *path.parents)]
    for pattern in (p.rstrip("/") for p in patterns):
        candidates = parents if pattern.startswith("/") else runs
        if any(fnmatchcase(candidate, pattern) for candidate in candidates):
            return True
    return False


def regular_files(top: Path, patterns: Sequence[str]) -> Iterator[Path]:
    """Regular files under top (symbolic links not followed), sorted, minus exclusions."""
    if top.is_file() and not top.is_symlink():
        if not excluded(top, patterns):
            yield top
        return
    for directory, dirnames, filenames in os.walk(top):
        here = Path(directory)
        dirnames[:] = sorted(d for d in dirnames if not excluded(here / d, patterns))
        for name in sorted(filenames):
            path = here / name
            if path.is_file() and not path.is_symlink() and not excluded(path, patterns):
                yield path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def files_manifest(config: Config, log: Log) -> dict[str, Any]:
    files: dict[str, dict[str, Any]] = {}
    own = config.staging_dir / FILES_MANIFEST
    for top in (*config.paths, config.staging_dir):
        if not top.exists():
            log(f"files: warning: {top} does not exist, not backed up")
            continue
        for path in regular_files(top, config.exclude):
            if path != own:
                files[str(path)] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return {"created": now_iso(), "files": files}


def verify_files(config: Config, root: Path) -> dict[str, Any]:
    """Every file of the manifest under root, with its size and SHA-256."""
    manifest = read_json(staged(config, root) / FILES_MANIFEST)
    differences: list[str] = []
    size = 0
    for name, want in sorted(manifest["files"].items()):
        path = root / name.lstrip("/")
        if not path.is_file():
            differences.append(f"{name}: missing")
        elif sha256_file(path) != want["sha256"]:
            differences.append(f"{name}: sha256 differs")
        else:
            size += want["size"]
    return {
        "ok": not differences,
        "files": len(manifest["files"]),
        "bytes": size,
        "differences": differences,
    }


# -- Nextcloud ---------------------------------------------------------------------------


def occ_maintenance(nextcloud: NextcloudSettings, switch: str) -> None:
    argv = as_user(nextcloud.user, [nextcloud.php, nextcloud.occ, "maintenance:mode", switch])
    run_checked(argv, f"occ maintenance:mode {switch}")


@contextlib.contextmanager
def maintenance_mode(nextcloud: NextcloudSettings | None, log: Log) -> Iterator[None]:
    """Nextcloud's admin manual has the config and data folders and the database backed up
    in maintenance mode, so that they match:
    https://docs.nextcloud.com/server/latest/admin_manual/maintenance/backup.html
    It is always switched off again, whatever happened."""
    if nextcloud is None:
        yield
        return
    occ_maintenance(nextcloud, "--on")
    log("nextcloud: maintenance mode on")
    try:
        yield
    finally:
        occ_maintenance(nextcloud, "--off")
        log("nextcloud: maintenance mode off")


# -- run ---------------------------------------------------------------------------------


@contextlib.contextmanager
def run_lock(state_dir: Path) -> Iterator[None]:
    """One run at a time (the timer and a run by hand share the staging directory)."""
    state_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    with (state_dir / "run.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise BackupError("another educloud-backup run is in progress") from error
        yield


def prepare_staging(staging: Path) -> None:
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(mode=0o700, parents=True)


def stage(config: Config, log: Log) -> None:
    """Steps (2) and (3): the dumps and their manifests in the staging directory."""
    prepare_staging(config.staging_dir)
    pg = config.postgresql
    if pg.enabled and pg.primary_only and in_recovery(pg):
        log("postgresql: this server is a replica; the primary's backup holds the databases")
    elif pg.enabled:
        dump_postgresql(pg, config.staging_dir / PG_DIR, log)
    manifest = files_manifest(config, log)
    write_json(config.staging_dir / FILES_MANIFEST, manifest, 0o600)
    log(f"files: {len(manifest['files'])} files in the manifest")


def backup(config: Config, log: Log) -> dict[str, Any]:
    sources = [config.staging_dir, *(p for p in config.paths if p.exists())]
    summary = backup_summary(restic_checked(config, "backup", *backup_argv(config, sources)))
    log(
        f"restic: snapshot {summary.get('snapshot_id')}: {summary.get('files_new')} new files, "
        f"{summary.get('data_added')} bytes added in {summary.get('total_duration', 0):.1f} s"
    )
    return summary


def apply_retention(config: Config, log: Log) -> None:
    unlock_stale(config)
    restic_checked(config, "forget", *forget_argv(config))
    log(
        f"restic: forget --prune: kept within {config.keep.daily_days}d daily, "
        f"{config.keep.weekly_days}d weekly, {config.keep.monthly_days}d monthly"
    )


def status_snapshots(config: Config, previous: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The repository's snapshots of this host; the last known list when unreachable."""
    try:
        found = list_snapshots(config)
    except BackupError:
        kept = previous.get("snapshots", [])
        return kept if isinstance(kept, list) else []
    return [{k: s.get(k) for k in ("id", "short_id", "time")} for s in found]


def write_status(config: Config, last_run: dict[str, Any]) -> dict[str, Any]:
    path = config.state_dir / "status.json"
    previous = read_json(path) if path.exists() else {}
    status = {
        "host": config.host,
        "repository": config.repository,
        "last_run": last_run,
        "snapshots": status_snapshots(config, previous),
        "keep": {
            "daily_days": config.keep.daily_days,
            "weekly_days": config.keep.weekly_days,
            "monthly_days": config.keep.monthly_days,
            "retention_days": config.keep.retention_days,
        },
    }
    write_json(path, status, 0o644)
    return status


def run_backup(config: Config, log: Log) -> dict[str, Any]:
    """Steps (1)-(6); status.json is written whatever happens, then any error raised."""
    clock = time.monotonic()
    last_run: dict[str, Any] = dict.fromkeys(RUN_FIELDS)
    last_run.update(started=now_iso(), ok=False)
    with run_lock(config.state_dir):
        try:
            with maintenance_mode(config.nextcloud, log):
                stage(config, log)
                summary = backup(config, log)
            last_run.update(
                snapshot_id=summary.get("snapshot_id"),
                files_new=summary.get("files_new"),
                data_added_bytes=summary.get("data_added"),
            )
            if config.append_only:
                log("restic: retention left to the operators (append-only repository)")
            else:
                apply_retention(config, log)
            last_run["ok"] = True
        except Exception as error:
            last_run["error"] = str(error) or type(error).__name__
            raise
        finally:
            # The dumps are plaintext copies of every database: once in the encrypted
            # snapshot (or failed), they must not outlive the data they copy (C7, C10).
            shutil.rmtree(config.staging_dir, ignore_errors=True)
            last_run.update(finished=now_iso(), duration_s=round(time.monotonic() - clock, 1))
            write_status(config, last_run)
            log(f"status: {'ok' if last_run['ok'] else 'failed'} in {last_run['duration_s']} s")
    return last_run


# -- failure mail ------------------------------------------------------------------------


def journal_tail(unit: str, lines: int = JOURNAL_LINES) -> str:
    argv = ["journalctl", "-u", unit, "-n", str(lines), "--no-pager", "-o", "short-iso"]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"(journal indisponible : {error})"
    return result.stdout if result.returncode == 0 else f"(journal indisponible : {result.stderr})"


def failure_message(config: Config, mail: MailSettings, unit: str, journal: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"[educloud] Échec de la sauvegarde sur {config.host}"
    message["From"] = mail.sender
    message["To"] = ", ".join(mail.recipients)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=config.host)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(
        f"Bonjour,\n\n"
        f"La sauvegarde chiffrée de {config.host} a échoué (service {unit}).\n"
        f"Les données de cette nuit ne sont pas sauvegardées tant qu'elle n'a pas réussi.\n\n"
        f"Dernières lignes du journal :\n\n{journal.rstrip()}\n\n"
        f"Pour voir l'état et relancer, sur {config.host} :\n\n"
        f"    educloud-backup status\n"
        f"    systemctl start educloud-backup.service\n\n"
        f"-- \nSauvegardes educloud (message automatique)\n"
    )
    return message


def send_mail(mail: MailSettings, message: EmailMessage) -> None:
    """Raises OSError or smtplib.SMTPException when the relay does not take it."""
    with smtplib.SMTP(mail.host, mail.port, timeout=60) as client:
        if mail.starttls:
            client.starttls(context=ssl.create_default_context())
        client.send_message(message)


def notify_failure(config: Config, unit: str) -> str:
    """Mail the operators; the line for stderr. BackupError when no mail could be sent."""
    mail = config.mail
    if mail is None or not mail.recipients:
        return f"backup failed on {config.host} ({unit}); no mail recipients configured"
    message = failure_message(config, mail, unit, journal_tail(unit))
    try:
        send_mail(mail, message)
    except (OSError, smtplib.SMTPException) as error:
        raise BackupError(
            f"backup failed on {config.host} ({unit}); mail not sent: {error}"
        ) from error
    return f"backup failed on {config.host} ({unit}); mail sent to {len(mail.recipients)}"


# -- command line ------------------------------------------------------------------------


def print_line(line: str) -> None:
    print(line, flush=True)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True), flush=True)


def report_result(report: Mapping[str, Any], what: str) -> int:
    print_json(report)
    if report["ok"]:
        return 0
    first = "; ".join(report["differences"][:10])
    print(f"educloud-backup: {what}: {len(report['differences'])} differ: {first}", file=sys.stderr)
    return 1


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(
        prog="educloud-backup", description="Encrypted backups of this server with restic."
    )
    main_parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    commands = main_parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init", help="create the repository unless it exists")
    commands.add_parser("run", help="back up now and apply the retention policy")
    check = commands.add_parser("check", help="restic check (exit status passed through)")
    check.add_argument("--read-data", action="store_true")
    commands.add_parser("snapshots", help="this host's snapshots (JSON)")
    restore = commands.add_parser("restore", help="restore a snapshot under a directory")
    restore.add_argument("--target", type=Path, required=True)
    restore.add_argument("--snapshot", default="latest")
    for name, text in (
        ("restore-postgresql", "restore the restored dumps into this (fresh) cluster"),
        ("verify-postgresql", "compare every table with the backup's manifest"),
        ("verify-files", "compare every restored file with the backup's manifest"),
    ):
        commands.add_parser(name, help=text).add_argument("--root", type=Path, required=True)
    notify = commands.add_parser("notify-failure", help="mail the operators about a failure")
    notify.add_argument("unit")
    commands.add_parser("status", help="print the last run's status")
    scan = commands.add_parser(
        "scan", help="search the raw packs for the patterns on stdin (one a line; JSON out)"
    )
    scan.add_argument("--max-packs", type=int, default=500)
    return main_parser


def dispatch(args: argparse.Namespace, config: Config) -> int:
    command = args.command
    if command == "init":
        print_line("created" if init_repository(config) else "exists")
    elif command == "run":
        run_backup(config, print_line)
    elif command == "check":
        result = check_repository(config, args.read_data)
        print(result.stdout, end="", flush=True)
        print(result.stderr, end="", file=sys.stderr)
        return result.returncode
    elif command == "snapshots":
        print_json(list_snapshots(config))
    elif command == "restore":
        print(restore_snapshot(config, args.target, args.snapshot), end="", flush=True)
    elif command == "restore-postgresql":
        restore_postgresql(config, args.root, print_line)
    elif command == "verify-postgresql":
        return report_result(verify_postgresql(config, args.root), "verify-postgresql")
    elif command == "verify-files":
        return report_result(verify_files(config, args.root), "verify-files")
    elif command == "notify-failure":
        print(f"educloud-backup: {notify_failure(config, args.unit)}", file=sys.stderr)
    elif command == "status":
        print_json(read_json(config.state_dir / "status.json"))
    elif command == "scan":
        patterns = sys.stdin.buffer.read().splitlines()
        print_json(scan_packs(config, patterns, args.max_packs))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return dispatch(args, load_config(args.config))
    except ConfigError as error:
        print(f"educloud-backup: configuration: {error}", file=sys.stderr)
        return 2
    except BackupError as error:
        print(f"educloud-backup: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
