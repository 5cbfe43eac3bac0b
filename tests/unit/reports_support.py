"""Real components for the report service's tests: a throwaway PostgreSQL cluster, an SMTP
sink and the WSGI app served on 127.0.0.1. Nothing leaves this machine.

PostgreSQL: Debian's binaries (/usr/lib/postgresql/<version>/bin), a cluster in a temporary
directory listening only on a unix socket there, run as `nobody` when the tests run as root
(postgres refuses root). Each test gets its own database owned by `educloud_reports`, as the
reporting role creates it on the servers.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
import shutil
import socketserver
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import psycopg2
import yaml

from educloud.reporting.service.app import ReportsApp
from educloud.reporting.service.config import load

SERVICE_ROLE = "educloud_reports"


def postgres_bin() -> Path | None:
    """Debian's PostgreSQL server binaries, newest version first; None when absent."""
    root = Path("/usr/lib/postgresql")
    found = sorted(
        (p for p in root.glob("*/bin") if (p / "initdb").exists() and (p / "pg_ctl").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    return found[0] if found else None


class PostgresCluster:
    """initdb + pg_ctl in a temporary directory; unix socket only, trust authentication."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="educloud-pg-"))
        self.root.chmod(0o755)  # `nobody` must reach the data and socket directories
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self._names = itertools.count(1)
        self._as_root = os.geteuid() == 0

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "nobody", "--"] if self._as_root else []
        result = subprocess.run(
            [*prefix, *argv], capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            log = self.root / "postgres.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{argv[0]} failed: {result.stderr}{result.stdout}\n{tail}")

    def start(self) -> PostgresCluster:
        for directory in (self.data, self.socket_dir):
            directory.mkdir(mode=0o700)
            if self._as_root:
                shutil.chown(directory, "nobody", "nogroup")
        log = self.root / "postgres.log"
        log.touch()
        if self._as_root:
            shutil.chown(log, "nobody", "nogroup")
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        self.socket_dir.chmod(0o755)  # the tests (root) connect to the socket
        options = f"-k {self.socket_dir} -c listen_addresses='' -c fsync=off"
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(log),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE ROLE {SERVICE_ROLE} LOGIN")
        return self

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    @contextmanager
    def admin(self, dbname: str = "postgres") -> Iterator[Any]:
        conn = psycopg2.connect(host=str(self.socket_dir), user="postgres", dbname=dbname)
        conn.autocommit = True
        try:
            yield conn
        finally:
            conn.close()

    def new_database(self) -> str:
        """A fresh database owned by the service's role, as on the servers."""
        name = f"reports_{next(self._names)}"
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name} OWNER {SERVICE_ROLE}")
        return name


@dataclass
class SmtpSink:
    """A minimal SMTP server (RFC 5321 subset) on 127.0.0.1 keeping what it receives.

    `refuse` makes it answer 451 to MAIL FROM, as a relay that cannot take mail now.
    """

    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    refuse: bool = False

    def __post_init__(self) -> None:
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self) -> None:
                self.reply("220 sink.test ESMTP")
                sender, recipients = "", []
                while True:
                    raw = self.rfile.readline()
                    if not raw:
                        return
                    verb = raw.decode(errors="replace").strip()
                    upper = verb.upper()
                    if upper.startswith(("EHLO", "HELO")):
                        self.reply("250 sink.test")
                    elif upper.startswith("MAIL FROM:"):
                        if sink.refuse:
                            self.reply("451 4.3.0 try again later")
                            continue
                        sender, recipients = verb[10:].strip(" <>"), []
                        self.reply("250 OK")
                    elif upper.startswith("RCPT TO:"):
                        recipients.append(verb[8:].strip(" <>"))
                        self.reply("250 OK")
                    elif upper == "DATA":
                        self.reply("354 end with .")
                        lines = []
                        while (line := self.rfile.readline()) not in (b".\r\n", b""):
                            lines.append(line[1:] if line.startswith(b"..") else line)
                        parsed = message_from_bytes(b"".join(lines), policy=policy.default)
                        assert isinstance(parsed, EmailMessage)
                        sink.messages.append((sender, recipients, parsed))
                        self.reply("250 OK queued")
                    elif upper == "QUIT":
                        self.reply("221 bye")
                        return
                    elif upper in ("RSET", "NOOP"):
                        self.reply("250 OK")
                    else:
                        self.reply("502 not implemented")

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Clock:
    """The service's wall clock, moved forward by the tests instead of sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows the test's own output."""


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


@dataclass
class Service:
    """The report service serving on 127.0.0.1, with what the tests need to drive it."""

    url: str
    app: ReportsApp
    clock: Clock
    token: str
    """The moderators' bearer token (its sha256 is in the configuration)."""
    dbname: str
    cluster: PostgresCluster
    smtp: SmtpSink
    config_path: Path

    @property
    def form_url(self) -> str:
        return f"{self.url}/signalement"

    @property
    def api(self) -> str:
        return f"{self.url}/moderation/api"

    @contextmanager
    def db(self) -> Iterator[Any]:
        with self.cluster.admin(self.dbname) as conn:
            yield conn

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.db() as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())


def write_config(
    directory: Path,
    cluster: PostgresCluster,
    dbname: str,
    smtp_port: int,
    token: str,
    **overrides: Any,
) -> Path:
    secret_file = directory / "form_secret"
    secret_file.write_text(secrets.token_urlsafe(48))
    settings: dict[str, Any] = {
        "database": {"host": str(cluster.socket_dir), "dbname": dbname, "user": SERVICE_ROLE},
        "smtp": {
            "host": "127.0.0.1",
            "port": smtp_port,
            "sender": "signalement@educloud.test",
            "moderators": ["moderation@educloud.test", "dpo@educloud.test"],
            "starttls": False,
        },
        "public_base_path": "/signalement",
        "platform_name": "educloud test",
        "privacy_url": "/confidentialite",
        "platform_hosts": ["cloud.educloud.test", "auth.educloud.test"],
        "max_body_bytes": 16384,
        "rate_limit": {"per_address_per_hour": 5, "global_per_hour": 200},
        "moderation_token_sha256": hashlib.sha256(token.encode()).hexdigest(),
        "form_secret_file": str(secret_file),
        "trusted_proxies": ["127.0.0.1"],
        "retention_days": 365,
    }
    settings.update(overrides)
    path = directory / "reports.yml"
    path.write_text(yaml.safe_dump(settings, allow_unicode=True))
    return path


@contextmanager
def serve(cluster: PostgresCluster, directory: Path, **overrides: Any) -> Iterator[Service]:
    smtp = SmtpSink()
    token = secrets.token_urlsafe(32)
    dbname = cluster.new_database()
    config_path = write_config(directory, cluster, dbname, smtp.port, token, **overrides)
    clock = Clock()
    app = ReportsApp(load(config_path), clock=clock)
    server = make_server(
        "127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield Service(
            url=f"http://127.0.0.1:{server.server_port}",
            app=app,
            clock=clock,
            token=token,
            dbname=dbname,
            cluster=cluster,
            smtp=smtp,
            config_path=config_path,
        )
    finally:
        server.shutdown()
        server.server_close()
        smtp.close()


@contextmanager
def running_cluster() -> Iterator[PostgresCluster]:
    """A started cluster for a test module; pytest.skip's reason when PostgreSQL is absent."""
    import pytest

    bindir = postgres_bin()
    if bindir is None:
        pytest.skip(
            "PostgreSQL's server binaries are absent (/usr/lib/postgresql/*/bin): "
            "apt-get install postgresql (run.sh installs it)"
        )
    cluster = PostgresCluster(bindir).start()
    try:
        yield cluster
    finally:
        cluster.stop()


LOOPBACK_CLIENT = "127.0.0.1/32"
"""The client the tests post as (the service's peer, without X-Forwarded-For)."""


def token_for(service: Service, age: float = 10, client: str = LOOPBACK_CLIENT) -> str:
    """A genuine form token, served `age` seconds ago to `client` (app.client_network)."""
    from educloud.reporting.service import form

    return form.issue_token(service.app.config.form_secret, service.clock() - age, client=client)


def submit_report(
    service: Service,
    link: str,
    description: str = "Contenu choquant partagé.",
    kind: str = "lien",
) -> str:
    """Post a valid report through the public form, as a person would; its reference."""
    import re

    import requests

    data = {
        "type": kind,
        "lien": link,
        "description": description,
        "consentement": "oui",
        "jeton": token_for(service),
        "site_web": "",
    }
    answer = requests.post(service.form_url, data=data, timeout=10)
    found = re.search(r"SIG-[A-Z0-9]{6}", answer.text)
    assert answer.status_code == 200 and found, answer.text
    return found.group(0)
