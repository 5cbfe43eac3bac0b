"""The backup agent (roles/backup/files/educloud_backup_agent.py) against real components.

PostgreSQL: throw-away clusters (tests/unit/reports_support.py), the pg tools run as `nobody`
through runuser and the connection made as `nobody`, as the agent does with `postgres` on the
servers. restic: Debian's package on a LOCAL repository (no sftp.command); the SFTP command
line is checked without restic. SMTP: the in-process sink. Nothing leaves this machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tests.unit.reports_support import PostgresCluster, SmtpSink, running_cluster

from educloud.backup import agent_module

pytestmark = pytest.mark.charter("C1", "C7", "C10")

PASSWORD = secrets.token_urlsafe(24)  # must never show up in any output
HOST = "edu-test"
needs_restic = pytest.mark.skipif(
    shutil.which("restic") is None, reason="restic is absent: apt-get install restic"
)


agent = agent_module.load()


def write_config(directory: Path, cluster: PostgresCluster | None, **overrides: Any) -> Path:
    password = directory / "repository-password"
    password.write_text(PASSWORD + "\n")
    password.chmod(0o600)
    (directory / "data").mkdir(exist_ok=True)
    connect = {"host": str(cluster.socket_dir), "user": "postgres"} if cluster else {}
    settings: dict[str, Any] = {
        "host": HOST,
        "repository": str(directory / "repo"),
        "target": None,
        "password_file": str(password),
        "ssh_key": "/etc/educloud/backup/ssh/id_ed25519",
        "known_hosts": "/etc/educloud/backup/ssh/known_hosts",
        "cache_dir": str(directory / "cache"),
        "staging_dir": str(directory / "staging"),
        "state_dir": str(directory / "state"),
        "paths": [str(directory / "data")],
        "exclude": ["*.tmp"],
        "postgresql": {"enabled": cluster is not None, "connect": connect, "os_user": "nobody"},
        "nextcloud": None,
        "keep": {"daily_days": 7, "weekly_days": 28, "monthly_days": 30, "retention_days": 30},
        "tag": "educloud",
        "mail": None,
    }
    settings.update(overrides)
    path = directory / "backup.json"
    path.write_text(json.dumps(settings))
    return path


def cli(config: Path, *args: str) -> int:
    return int(agent.main(["--config", str(config), *args]))


def fake_occ(directory: Path) -> tuple[dict[str, str], Path]:
    """An `occ` that records its arguments, run by /bin/sh as php would run the real one."""
    log = directory / "occ.log"
    script = directory / "occ"
    script.write_text(f'echo "$1 $2" >> {log}\n')
    return {"occ": str(script), "user": "root", "php": "/bin/sh"}, log


# -- PostgreSQL fixtures -----------------------------------------------------------------

SCHOOL = "bk_school"
LIBRARY = "bk_library"


@pytest.fixture(scope="module")
def school(cluster: PostgresCluster) -> PostgresCluster:
    """Two databases owned by an application role, tables of many types, NULLs, an empty
    table and a schema whose name needs quoting; CONNECT revoked as the postgresql role does."""
    with cluster.admin() as conn, conn.cursor() as cur:
        cur.execute("CREATE ROLE bk_owner LOGIN")
        for name in (SCHOOL, LIBRARY):
            cur.execute(f"CREATE DATABASE {name} OWNER bk_owner")
            cur.execute(f"REVOKE CONNECT ON DATABASE {name} FROM PUBLIC")
    with cluster.admin(SCHOOL) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE pupils (id int PRIMARY KEY, name text, born timestamptz, "
            "photo bytea, average numeric(5,2), note text);"
            "INSERT INTO pupils VALUES "
            "(1, 'Élodie', '2014-03-02 08:30:00+01', '\\xdeadbeef', 14.25, NULL),"
            "(2, 'Noé', NULL, NULL, NULL, 'redouble'),"
            "(3, 'Zoé \"la\" grande', '2013-12-31 23:59:59.5+00', '\\x00', 9.5, '');"
            'CREATE SCHEMA "Vie scolaire" AUTHORIZATION bk_owner;'
            'CREATE TABLE "Vie scolaire"."Absences" (pupil int, day date, reason text, '
            "duration interval, score double precision);"
            'INSERT INTO "Vie scolaire"."Absences" VALUES '
            "(1, '2026-01-12', 'malade', '2 days 03:00', 0.1),"
            "(2, '2026-02-01', NULL, NULL, 1e-300);"
            "CREATE TABLE empty (id int);"
            "ALTER TABLE pupils OWNER TO bk_owner;"
        )
    with cluster.admin(LIBRARY) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE books (id serial PRIMARY KEY, title text, tags text[], meta jsonb);"
            "INSERT INTO books (title, tags, meta) SELECT 'Livre ' || i, ARRAY['a', i::text], "
            "jsonb_build_object('n', i) FROM generate_series(1, 500) AS i;"
        )
    return cluster


@pytest.fixture
def fresh_cluster() -> Iterator[PostgresCluster]:
    """A new cluster as a restore host has it: only the bootstrap superuser."""
    with running_cluster() as started:
        with started.admin() as conn, conn.cursor() as cur:
            cur.execute("DROP ROLE educloud_reports")
        yield started


def rows(
    cluster: PostgresCluster, dbname: str, query: str, args: tuple[Any, ...] = ()
) -> list[tuple[Any, ...]]:
    with cluster.admin(dbname) as conn, conn.cursor() as cur:
        cur.execute(query, args)
        return list(cur.fetchall())


def execute(cluster: PostgresCluster, dbname: str, statement: str) -> None:
    with cluster.admin(dbname) as conn, conn.cursor() as cur:
        cur.execute(statement)


# -- configuration and restic command lines (no restic needed) ----------------------------


def test_sftp_command_line_pins_the_host_key_and_keeps_the_password_in_its_file(
    tmp_path: Path,
) -> None:
    path = write_config(
        tmp_path,
        None,
        repository="sftp:educloud-backup@198.18.0.12:/repos/edu1",
        target={"address": "198.18.0.12", "port": 2222, "user": "educloud-backup"},
    )
    config = agent.load_config(path)

    call = agent.restic_invocation(config, "snapshots", "--json")

    assert call.argv[:2] == ["restic", "-o"]
    assert call.argv[2] == (
        "sftp.command=ssh -F /dev/null -i /etc/educloud/backup/ssh/id_ed25519 "
        "-o GlobalKnownHostsFile=/dev/null "
        "-o UserKnownHostsFile=/etc/educloud/backup/ssh/known_hosts "
        "-o StrictHostKeyChecking=yes -o BatchMode=yes -p 2222 "
        "educloud-backup@198.18.0.12 -s sftp"
    )
    assert call.argv[3:] == ["snapshots", "--json"]
    assert call.env["RESTIC_REPOSITORY"] == "sftp:educloud-backup@198.18.0.12:/repos/edu1"
    assert call.env["RESTIC_PASSWORD_FILE"] == str(tmp_path / "repository-password")
    assert call.env["RESTIC_CACHE_DIR"] == str(tmp_path / "cache")
    assert "RESTIC_PASSWORD" not in call.env
    assert PASSWORD not in json.dumps([call.argv, call.env])


def test_rclone_program_is_ssh_to_the_append_only_account_without_arguments(
    tmp_path: Path,
) -> None:
    """The target's forced command picks the repository: restic sends no arguments of
    its own (rclone.args empty), and the run never forgets (append-only)."""
    path = write_config(
        tmp_path,
        None,
        repository="rclone:",
        append_only=True,
        target={"address": "198.18.0.12", "port": 22, "user": "backup-edu1"},
    )
    config = agent.load_config(path)
    assert config.append_only

    call = agent.restic_invocation(config, "snapshots")

    assert call.argv == [
        "restic",
        "-o",
        "rclone.program=ssh -T -F /dev/null -i /etc/educloud/backup/ssh/id_ed25519 "
        "-o GlobalKnownHostsFile=/dev/null "
        "-o UserKnownHostsFile=/etc/educloud/backup/ssh/known_hosts "
        "-o StrictHostKeyChecking=yes -o BatchMode=yes -p 22 backup-edu1@198.18.0.12",
        "-o",
        "rclone.args=",
        "snapshots",
    ]
    assert call.env["RESTIC_REPOSITORY"] == "rclone:"
    assert PASSWORD not in json.dumps([call.argv, call.env])


def test_s3_keys_come_from_their_file_into_the_environment_only(tmp_path: Path) -> None:
    """Object storage at a provider: restic's s3 backend over TLS, the endpoint's CA
    pinned with --cacert, the keys read from a 0600 file into restic's environment; none
    inherited from the caller's."""
    keys = tmp_path / "s3-credentials"
    keys.write_text("AWS_ACCESS_KEY_ID=AKIDLAB\nAWS_SECRET_ACCESS_KEY=s3cr3t-value\n")
    path = write_config(
        tmp_path,
        None,
        repository="s3:https://198.18.0.1:9443/educloud/edu1",
        s3={"credentials_file": str(keys), "cacert": "/etc/educloud/backup/s3-ca.pem"},
    )
    config = agent.load_config(path)
    assert config.object_storage and not config.over_ssh and not config.append_only

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_SESSION_TOKEN", "from-the-caller")
        call = agent.restic_invocation(config, "snapshots")

    assert call.argv == ["restic", "--cacert", "/etc/educloud/backup/s3-ca.pem", "snapshots"]
    assert call.env["RESTIC_REPOSITORY"] == "s3:https://198.18.0.1:9443/educloud/edu1"
    assert call.env["AWS_ACCESS_KEY_ID"] == "AKIDLAB"
    assert call.env["AWS_SECRET_ACCESS_KEY"] == "s3cr3t-value"  # noqa: S105
    assert "AWS_SESSION_TOKEN" not in call.env
    assert "s3cr3t-value" not in json.dumps(call.argv)
    # Its keys never go into its own snapshots, even with exclude emptied by an inventory.
    assert agent.backup_argv(replace(config, exclude=()), [Path("/etc/educloud")])[-4:] == [
        "--exclude", str(tmp_path / "repository-password"), "--exclude", str(keys),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("AWS_ACCESS_KEY_ID=AKIDLAB\n", "missing AWS_SECRET_ACCESS_KEY"),
        ("AWS_ACCESS_KEY_ID=AKIDLAB\nsecret-without-a-key\n", "line 2 is not"),
        ("AWS_ACCESS_KEY_ID=AKIDLAB\nAWS_SECRET_ACCESS_KEY=\n", "line 2 is not"),
    ],
)
def test_a_malformed_s3_credentials_file_is_named_without_its_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    keys = tmp_path / "s3-credentials"
    keys.write_text(content)
    path = write_config(
        tmp_path,
        None,
        repository="s3:https://198.18.0.1:9443/educloud/edu1",
        s3={"credentials_file": str(keys)},
    )
    assert cli(path, "snapshots") == 2
    err = capsys.readouterr().err
    assert message in err
    assert "AKIDLAB" not in err and "secret-without-a-key" not in err


def test_a_local_repository_gets_no_sftp_command(tmp_path: Path) -> None:
    config = agent.load_config(write_config(tmp_path, None))
    assert agent.restic_invocation(config, "check").argv == ["restic", "check"]


def test_retention_and_backup_arguments(tmp_path: Path) -> None:
    config = agent.load_config(write_config(tmp_path, None, exclude=["*.tmp", "/srv/cache"]))

    assert agent.forget_argv(config) == [
        "forget", "--host", HOST, "--tag", "educloud", "--group-by", "host,tags",
        "--keep-within-daily", "7d", "--keep-within-weekly", "28d",
        "--keep-within-monthly", "30d", "--prune", "--max-unused", "0",
    ]  # fmt: skip
    # The repository password's file is always left out, whatever `exclude` says.
    assert agent.backup_argv(config, [Path("/a"), Path("/b")]) == [
        "backup", "--host", HOST, "--tag", "educloud", "--json", "--quiet", "/a", "/b",
        "--exclude", "*.tmp", "--exclude", "/srv/cache",
        "--exclude", str(tmp_path / "repository-password"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"keep": {"daily_days": 7, "weekly_days": 28, "monthly_days": 31, "retention_days": 30}},
         "exceed retention_days"),
        ({"repository": "sftp:u@h:/r"}, "required for an sftp: or rclone: repository"),
        ({"repository": "rclone:"}, "required for an sftp: or rclone: repository"),
        ({"repository": "s3:https://198.18.0.1/b"}, "required for an s3: repository"),
        ({"repository": "s3:http://198.18.0.1/b", "s3": {"credentials_file": "/k"}},
         "TLS only"),
        ({"repository": "s3:https://198.18.0.1/b", "s3": {"credentials_file": "k"}},
         "absolute path"),
        ({"staging_dir": "var/backups"}, "absolute path"),
        ({"staging_dir": "/var"}, "too close to /"),
        ({"postgresql": {"enabled": True, "connect": {"password": "x"}}}, "peer authentication"),
        ({"keep": None}, "keep: missing"),
    ],
)  # fmt: skip
def test_malformed_configuration_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any], message: str
) -> None:
    path = write_config(tmp_path, None, **change)
    assert cli(path, "status") == 2
    assert message in capsys.readouterr().err


def test_backup_summary_is_the_last_summary_line() -> None:
    output = (
        '{"message_type":"status","percent_done":0.5}\nnot json\n'
        '{"message_type":"summary","files_new":3,"data_added":705,"snapshot_id":"4a9d3cf0"}\n'
    )
    assert agent.backup_summary(output)["snapshot_id"] == "4a9d3cf0"
    with pytest.raises(agent.BackupError, match="no summary"):
        agent.backup_summary('{"message_type":"status"}\n')


def test_tools_run_as_the_configured_user() -> None:
    assert agent.as_user("www-data", ["php", "occ"]) == [
        "runuser",
        "-u",
        "www-data",
        "--",
        "php",
        "occ",
    ]
    assert agent.as_user(None, ["pg_dump"]) == ["pg_dump"]
    pg = agent.PostgresSettings(True, {"host": "/run/postgresql", "port": 5433}, "postgres")
    assert agent.pg_tool(pg, "pg_dump", "-Fc") == [
        "runuser", "-u", "postgres", "--", "pg_dump", "-h", "/run/postgresql", "-p", "5433", "-Fc",
    ]  # fmt: skip


# -- PostgreSQL: dump, restore, verify -----------------------------------------------------


def test_dump_and_manifest_share_one_snapshot_and_restore_verifies(
    school: PostgresCluster,
    fresh_cluster: PostgresCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = agent.load_config(write_config(tmp_path, school))
    dump = agent.run_pg_dump

    def dump_while_writing(pg: Any, dbname: str, snapshot: str, file: Path) -> None:
        # Writes after the snapshot was exported: neither the dump nor the manifest sees them.
        if dbname == SCHOOL:
            execute(school, SCHOOL, "INSERT INTO pupils (id, name) VALUES (100, 'avant')")
        dump(pg, dbname, snapshot, file)
        if dbname == SCHOOL:
            execute(school, SCHOOL, "INSERT INTO pupils (id, name) VALUES (101, 'après')")

    monkeypatch.setattr(agent, "run_pg_dump", dump_while_writing)
    lines: list[str] = []
    manifest = agent.dump_postgresql(
        source.postgresql, source.staging_dir / "postgresql", lines.append
    )
    monkeypatch.undo()

    tables = manifest["databases"][SCHOOL]["tables"]
    assert {k: v["rows"] for k, v in tables.items()} == {
        "Vie scolaire.Absences": 2, "public.empty": 0, "public.pupils": 3,
    }  # fmt: skip
    assert tables["public.empty"]["md5"] == "d41d8cd98f00b204e9800998ecf8427e"
    assert manifest["databases"][LIBRARY]["tables"]["public.books"]["rows"] == 500
    assert manifest["databases"][SCHOOL]["owner"] == "bk_owner"
    assert "postgres" in manifest["databases"]
    assert f"postgresql: {SCHOOL}: 3 tables, 5 rows" in lines
    assert (source.staging_dir / "postgresql/globals.sql").read_text().count("CREATE ROLE bk_owner")
    execute(school, SCHOOL, "DELETE FROM pupils WHERE id >= 100")

    restored = write_config(tmp_path, fresh_cluster)
    assert cli(restored, "restore-postgresql", "--root", "/") == 0
    capsys.readouterr()
    assert cli(restored, "verify-postgresql", "--root", "/") == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    # The restored databases are the application's again, and still closed to PUBLIC (C10).
    acl = rows(
        fresh_cluster,
        "postgres",
        "SELECT datacl::text FROM pg_database WHERE datname = %s",
        (SCHOOL,),
    )
    assert "=Tc/" not in acl[0][0] and "bk_owner=CTc/bk_owner" in acl[0][0]
    assert rows(
        fresh_cluster, SCHOOL, "SELECT tableowner FROM pg_tables WHERE tablename = 'pupils'"
    ) == [("bk_owner",)]

    execute(fresh_cluster, SCHOOL, "UPDATE pupils SET name = 'Noe' WHERE id = 2")
    capsys.readouterr()
    assert cli(restored, "verify-postgresql", "--root", "/") == 1
    captured = capsys.readouterr()
    assert f"{SCHOOL}: public.pupils: rows 3 -> 3" in captured.err
    assert "Absences" not in captured.err
    report = json.loads(captured.out)
    assert report["ok"] is False and report["tables"] == 4
    assert [t["table"] for t in report["databases"][SCHOOL] if not t["ok"]] == ["public.pupils"]


def test_a_replica_of_a_patroni_cluster_leaves_the_databases_to_the_primary(
    school: PostgresCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, school)
    data = json.loads(path.read_text())
    data["postgresql"]["primary_only"] = True
    path.write_text(json.dumps(data))
    config = agent.load_config(path)
    assert agent.in_recovery(config.postgresql) is False  # the real server is a primary
    lines: list[str] = []
    agent.stage(config, lines.append)
    assert (config.staging_dir / "postgresql" / "globals.sql").exists()
    monkeypatch.setattr(agent, "in_recovery", lambda pg: True)
    lines.clear()
    agent.stage(config, lines.append)
    assert not (config.staging_dir / "postgresql").exists()
    assert "postgresql: this server is a replica; the primary's backup holds the databases" in lines


def test_a_missing_table_and_a_missing_database_are_named(
    school: PostgresCluster, tmp_path: Path
) -> None:
    config = agent.load_config(write_config(tmp_path, school))
    manifest = agent.dump_postgresql(config.postgresql, config.staging_dir / "postgresql", print)
    manifest["databases"][SCHOOL]["tables"]["public.gone"] = {"rows": 1, "md5": "x"}
    manifest["databases"]["bk_gone"] = {"tables": {}}
    agent.write_json(config.staging_dir / "postgresql/manifest.json", manifest, 0o600)

    report = agent.verify_postgresql(config, Path("/"))

    assert report["differences"] == ["bk_gone: database missing", f"{SCHOOL}: public.gone: missing"]


# -- files manifest ------------------------------------------------------------------------


def test_files_manifest_detects_a_changed_byte_and_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, None, exclude=["*.tmp", str(tmp_path / "data/cache")])
    config = agent.load_config(path)
    data = tmp_path / "data"
    (data / "etc/keycloak").mkdir(parents=True)
    (data / "etc/keycloak/keycloak.conf").write_text("db=postgres\n")
    (data / "journal.jsonl").write_bytes(os.urandom(3000))
    (data / "scratch.tmp").write_text("not backed up")
    (data / "cache").mkdir()
    (data / "cache/big").write_text("not backed up")
    (data / "link").symlink_to(data / "journal.jsonl")
    agent.prepare_staging(config.staging_dir)
    (config.staging_dir / "dump").write_text("staged")

    manifest = agent.files_manifest(config, print)
    agent.write_json(config.staging_dir / "files-manifest.json", manifest, 0o600)

    assert sorted(manifest["files"]) == [
        str(data / "etc/keycloak/keycloak.conf"), str(data / "journal.jsonl"),
        str(config.staging_dir / "dump"),
    ]  # fmt: skip
    assert manifest["files"][str(data / "journal.jsonl")]["size"] == 3000
    assert cli(path, "verify-files", "--root", "/") == 0

    journal = data / "journal.jsonl"
    content = bytearray(journal.read_bytes())
    content[1234] ^= 0x01
    journal.write_bytes(bytes(content))
    (data / "etc/keycloak/keycloak.conf").unlink()
    capsys.readouterr()
    assert cli(path, "verify-files", "--root", "/") == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["differences"] == [
        f"{data}/etc/keycloak/keycloak.conf: missing", f"{data}/journal.jsonl: sha256 differs",
    ]  # fmt: skip
    assert "journal.jsonl: sha256 differs" in captured.err


def test_exclusion_patterns() -> None:
    assert agent.excluded(Path("/etc/educloud/backup/ssh/id"), ["/etc/educloud/backup"])
    assert agent.excluded(Path("/var/www/data/x.log"), ["*.log"])
    assert agent.excluded(Path("/var/www/data/appdata_x/preview/1.png"), ["preview"])
    assert not agent.excluded(Path("/etc/educloud/backup.json"), ["/etc/educloud/backup"])


# -- run failures, maintenance mode, lock (no restic needed) ----------------------------


def test_a_failed_run_writes_status_and_leaves_maintenance_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nextcloud, occ_log = fake_occ(tmp_path)
    path = write_config(tmp_path, None, nextcloud=nextcloud, restic=str(tmp_path / "no-restic"))

    assert cli(path, "run") == 1

    assert occ_log.read_text().splitlines() == ["maintenance:mode --on", "maintenance:mode --off"]
    status = json.loads((tmp_path / "state/status.json").read_text())
    assert status["last_run"]["ok"] is False
    assert "cannot run" in status["last_run"]["error"]
    assert status["last_run"]["snapshot_id"] is None and status["last_run"]["finished"]
    assert status["host"] == HOST and status["snapshots"] == []
    assert oct((tmp_path / "state/status.json").stat().st_mode & 0o777) == "0o644"
    captured = capsys.readouterr()
    assert "nextcloud: maintenance mode off" in captured.out
    assert "educloud-backup: error:" in captured.err


def test_a_second_run_waits_for_none(tmp_path: Path) -> None:
    config = agent.load_config(write_config(tmp_path, None))
    with agent.run_lock(config.state_dir), pytest.raises(agent.BackupError, match="in progress"):
        agent.run_backup(config, print)


# -- failure mail ----------------------------------------------------------------------


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    yield sink
    sink.close()


def fake_journalctl(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    script = bin_dir / "journalctl"
    script.write_text('#!/bin/sh\necho "args: $*"\nfor i in $(seq 1 40); do echo "line $i"; done\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def test_failure_mail_in_french_with_the_journal(
    tmp_path: Path,
    smtp: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_journalctl(tmp_path, monkeypatch)
    mail = {
        "host": "127.0.0.1", "port": smtp.port, "starttls": False,
        "sender": "sauvegarde@educloud.test",
        "recipients": ["ops@educloud.test", "dpo@educloud.test"],
    }  # fmt: skip
    path = write_config(tmp_path, None, mail=mail)

    assert cli(path, "notify-failure", "educloud-backup.service") == 0

    sender, recipients, message = smtp.messages[0]
    assert sender == "sauvegarde@educloud.test"
    assert recipients == ["ops@educloud.test", "dpo@educloud.test"]
    assert message["Subject"] == f"[educloud] Échec de la sauvegarde sur {HOST}"
    body = message.get_content()
    assert "args: -u educloud-backup.service -n 40 --no-pager -o short-iso" in body
    assert "line 40" in body and "a échoué" in body
    assert "mail sent to 2" in capsys.readouterr().err

    smtp.refuse = True
    assert cli(path, "notify-failure", "educloud-backup.service") == 1
    assert "mail not sent" in capsys.readouterr().err


# -- restic, on a local repository ---------------------------------------------------------


def snapshot_ids(config: Any) -> list[str]:
    return [s["short_id"] for s in agent.list_snapshots(config)]


@needs_restic
def test_backup_restore_and_verify_like_the_drill(
    school: PostgresCluster,
    fresh_cluster: PostgresCluster,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    nextcloud, occ_log = fake_occ(tmp_path)
    path = write_config(tmp_path, school, nextcloud=nextcloud)
    config = agent.load_config(path)
    (tmp_path / "data/keycloak.conf").write_text("db-url=jdbc:postgresql://localhost/keycloak\n")
    (tmp_path / "data/photo.jpg").write_bytes(os.urandom(100_000))

    assert cli(path, "init") == 0
    assert cli(path, "init") == 0
    assert capsys.readouterr().out.split() == ["created", "exists"]

    # A snapshot of this host older than the retention period: the run's forget removes it.
    old = agent.restic(config, "backup", "--host", HOST, "--tag", "educloud",
                       "--time", "2020-01-01 00:00:00", str(tmp_path / "data"))  # fmt: skip
    assert old.returncode == 0, old.stderr
    assert len(snapshot_ids(config)) == 1

    assert cli(path, "run") == 0
    out = capsys.readouterr().out
    assert f"postgresql: {SCHOOL}: 3 tables, 5 rows" in out
    assert "restic: forget --prune" in out
    assert occ_log.read_text().splitlines() == ["maintenance:mode --on", "maintenance:mode --off"]
    status = json.loads((tmp_path / "state/status.json").read_text())
    run = status["last_run"]
    assert run["ok"] is True and run["error"] is None and run["files_new"] > 0
    assert [s["short_id"] for s in status["snapshots"]] == [run["snapshot_id"]]
    assert status["keep"]["retention_days"] == 30
    assert PASSWORD not in out + json.dumps(status)
    assert not config.staging_dir.exists()  # no plaintext dump left beside the data

    assert cli(path, "snapshots") == 0
    assert [s["short_id"] for s in json.loads(capsys.readouterr().out)] == [run["snapshot_id"]]
    assert cli(path, "check") == 0
    assert "no errors were found" in capsys.readouterr().out
    assert cli(path, "status") == 0
    assert json.loads(capsys.readouterr().out)["last_run"]["ok"] is True

    target = tmp_path / "restore"
    assert cli(path, "restore", "--target", str(target)) == 0
    capsys.readouterr()
    assert cli(path, "verify-files", "--root", str(target)) == 0
    verified = json.loads(capsys.readouterr().out)
    assert verified["ok"] and verified["files"] >= 5

    on_fresh = write_config(tmp_path, fresh_cluster, nextcloud=nextcloud)
    assert cli(on_fresh, "restore-postgresql", "--root", str(target)) == 0
    capsys.readouterr()
    assert cli(on_fresh, "verify-postgresql", "--root", str(target)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["tables"] == 4 and report["rows"] == 505


@needs_restic
def test_init_never_overwrites_a_repository_it_cannot_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, None)
    assert cli(path, "init") == 0
    (tmp_path / "repository-password").write_text("another-password\n")

    assert cli(path, "init") == 1

    err = capsys.readouterr().err
    assert "cannot open the repository" in err and "wrong password" in err
    assert "another-password" not in err


@needs_restic
def test_an_interrupted_backup_leaves_the_repository_consistent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, None)
    config = agent.load_config(path)
    assert cli(path, "init") == 0
    big = tmp_path / "data/nextcloud"
    big.mkdir()
    for index in range(4):
        with (big / f"file{index}").open("wb") as out:
            for _ in range(24):
                out.write(os.urandom(1 << 20))
    total = 96 << 20

    call = agent.restic_invocation(config, "backup", "--json", "--host", HOST, str(big))
    process = subprocess.Popen(
        call.argv, env=call.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    for line in process.stdout:
        if json.loads(line).get("bytes_done", 0) > total // 4:
            process.send_signal(signal.SIGKILL)
            break
    process.wait()
    assert process.returncode == -signal.SIGKILL, "restic finished before it was killed"
    assert list((tmp_path / "repo/locks").iterdir()), "the killed run left its lock"
    assert snapshot_ids(config) == []

    assert cli(path, "check") == 0
    assert cli(path, "run") == 0
    assert len(snapshot_ids(config)) == 1
    assert not list((tmp_path / "repo/locks").iterdir())
    assert json.loads((tmp_path / "state/status.json").read_text())["last_run"]["ok"] is True
    capsys.readouterr()


@needs_restic
def test_an_append_only_run_leaves_retention_to_the_operators(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, None, append_only=True)
    config = agent.load_config(path)
    (tmp_path / "data/settings.conf").write_text("x=1\n")
    assert cli(path, "init") == 0
    old = agent.restic(config, "backup", "--host", HOST, "--tag", "educloud",
                       "--time", "2020-01-01 00:00:00", str(tmp_path / "data"))  # fmt: skip
    assert old.returncode == 0, old.stderr

    assert cli(path, "run") == 0

    out = capsys.readouterr().out
    assert "retention left to the operators" in out
    assert "forget" not in out
    assert len(snapshot_ids(config)) == 2  # the 2020 snapshot is the operators' to forget


def test_scan_reads_the_packs_as_stored_and_names_patterns_by_index(tmp_path: Path) -> None:
    """restic's packs are ciphertext: the data's own text is not in them. A plaintext
    file slipped into the repository's data directory under its own hash is listed and
    read like a pack, and found; the patterns are reported by index, never quoted."""
    path = write_config(tmp_path, None)
    config = agent.load_config(path)
    (tmp_path / "data/dump.sql").write_text("CREATE TABLE user_entity (id text);\n")
    assert cli(path, "init") == 0
    assert cli(path, "run") == 0
    patterns = [b"CREATE TABLE", b"", PASSWORD.encode()]

    clean = agent.scan_packs(config, patterns, limit=500)

    assert clean["packs"] >= 1 and clean["scanned"] == clean["packs"]
    assert clean["bytes"] > 0 and clean["hits"] == []

    plaintext = b"-- pg_dump\nCREATE TABLE user_entity (id text);\n"
    name = hashlib.sha256(plaintext).hexdigest()
    (tmp_path / "repo/data" / name[:2]).mkdir(exist_ok=True)
    (tmp_path / "repo/data" / name[:2] / name).write_bytes(plaintext)

    found = agent.scan_packs(config, patterns, limit=500)

    assert found["packs"] == clean["packs"] + 1
    assert found["hits"] == [{"pack": name, "pattern": 0}]
    assert PASSWORD not in json.dumps(found)
    assert agent.scan_packs(config, patterns, limit=1)["scanned"] == 1
