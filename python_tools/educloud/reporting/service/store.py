"""The reports in PostgreSQL: schema, reports, append-only decisions, rate limit, archive.

One connection per request (reports are rare; a gunicorn worker never shares one across a
fork). Every function takes an open connection and commits what it changes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from .config import DatabaseConfig

Connection = psycopg2.extensions.connection

# pg_advisory_xact_lock keys: one for the schema, one for the rate limit's count-then-insert.
_SCHEMA_LOCK = 7_210_901
_RATE_LOCK = 7_210_902

STATUSES = ("open", "taken_down", "dismissed")
ACTIONS = ("takedown", "dismiss", "reopen")
_STATUS_AFTER = {"takedown": "taken_down", "dismiss": "dismissed", "reopen": "open"}
REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read over the phone
REFERENCE_LENGTH = 6

SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    id             text PRIMARY KEY,
    created_at     timestamptz NOT NULL DEFAULT now(),
    content_kind   text NOT NULL CHECK (content_kind IN ('share_link', 'description')),
    link           text,
    description    text,
    contact_email  text,
    status         text NOT NULL DEFAULT 'open'
                   CHECK (status IN ('open', 'taken_down', 'dismissed')),
    notify_pending boolean NOT NULL DEFAULT true,
    notified_at    timestamptz,
    archived_at    timestamptz
);
CREATE INDEX IF NOT EXISTS reports_created_at ON reports (created_at);
CREATE TABLE IF NOT EXISTS report_decisions (
    id          bigserial PRIMARY KEY,
    report_id   text NOT NULL REFERENCES reports (id),
    decided_at  timestamptz NOT NULL DEFAULT now(),
    action      text NOT NULL CHECK (action IN ('takedown', 'dismiss', 'reopen')),
    decided_by  text NOT NULL,
    note        text NOT NULL DEFAULT '',
    share_ids   text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS report_decisions_report ON report_decisions (report_id);
-- Accepted reports of the last hour, by a salted hash of the client's address (never the
-- address): the rate limit's only memory. Rows older than an hour are deleted.
CREATE TABLE IF NOT EXISTS report_submissions (
    submitted_at timestamptz NOT NULL DEFAULT now(),
    client_hash  text NOT NULL
);
CREATE INDEX IF NOT EXISTS report_submissions_at ON report_submissions (submitted_at);
-- Today's random salt for those hashes; yesterday's is deleted, so an old hash can no longer
-- be linked to an address by trying them all.
CREATE TABLE IF NOT EXISTS report_salts (
    day  date PRIMARY KEY,
    salt bytea NOT NULL
);
-- The nonces of the form tokens already spent (each token is good for one report), kept
-- until the token would be refused as expired anyway (unix time).
CREATE TABLE IF NOT EXISTS report_spent_tokens (
    nonce      text PRIMARY KEY,
    expires_at bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS report_spent_tokens_expiry ON report_spent_tokens (expires_at);
"""


class ReportNotFoundError(Exception):
    pass


class DecisionConflictError(Exception):
    """A decision on a closed or archived report, without `reopen`."""


@dataclass(frozen=True)
class NewReport:
    content_kind: str
    description: str
    link: str | None = None
    contact_email: str | None = None


@dataclass(frozen=True)
class Decision:
    action: str
    decided_by: str
    decided_at: datetime
    note: str
    share_ids: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "by": self.decided_by,
            "at": self.decided_at.isoformat(),
            "note": self.note,
            "share_ids": list(self.share_ids),
        }


@dataclass(frozen=True)
class Report:
    id: str
    created_at: datetime
    content_kind: str
    link: str | None
    description: str | None
    contact_email: str | None
    status: str
    notify_pending: bool
    notified_at: datetime | None
    archived_at: datetime | None
    decisions: tuple[Decision, ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "content_kind": self.content_kind,
            "link": self.link,
            "description": self.description,
            "contact_email": self.contact_email,
            "status": self.status,
            "notify_pending": self.notify_pending,
            "notified_at": self.notified_at.isoformat() if self.notified_at else None,
            "archived_at": self.archived_at.isoformat() if self.archived_at else None,
            "decisions": [d.as_json() for d in self.decisions],
        }


@dataclass(frozen=True)
class PurgeResult:
    cutoff: datetime
    archived: tuple[str, ...]


def connect(database: DatabaseConfig) -> Connection:
    conn: Connection = psycopg2.connect(**database.connect_kwargs(), connect_timeout=5)
    return conn


@contextmanager
def connection(database: DatabaseConfig) -> Iterator[Connection]:
    conn = connect(database)
    try:
        yield conn
    finally:
        conn.close()


def create_schema(conn: Connection) -> None:
    """Idempotent; the advisory lock keeps two workers starting at once from racing."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        cur.execute(SCHEMA)


def new_reference() -> str:
    return "SIG-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))


def client_hash(conn: Connection, address: str) -> str:
    """HMAC of the client (its address, or its IPv6 /64 network) with today's random salt
    (created on first use, kept one day).

    The per-address count therefore restarts at midnight (the database's date): a bounded
    leak, and the price of never keeping a hash that outlives its salt.
    """
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM report_salts WHERE day < current_date")
        cur.execute(
            "INSERT INTO report_salts (day, salt) VALUES (current_date, %s) "
            "ON CONFLICT (day) DO NOTHING",
            (psycopg2.Binary(secrets.token_bytes(32)),),
        )
        cur.execute("SELECT salt FROM report_salts WHERE day = current_date")
        row = cur.fetchone()
    assert row is not None
    return hmac.new(bytes(row[0]), address.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Quota:
    """Accepted reports per hour (config.RateLimit: what a flood changes)."""

    per_client: int
    global_: int
    ceiling: int


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after: int = 0
    """Seconds until a slot frees, when refused."""
    replayed: bool = False
    """The form's token was spent already: refused, whatever the quota."""


def store_if_allowed(
    conn: Connection,
    report: NewReport,
    client: str,
    quota: Quota,
    token_nonce: str,
    token_expires_at: int,
    now: int,
) -> tuple[RateDecision, str | None]:
    """Spend the form's token and store the report, if the token is fresh and the quota
    allows it.

    The quota counts the last hour's reports: the client's (at most `per_client`), and
    everyone's. Past `global_`, each client may still send one report an hour; past
    `ceiling`, nobody. Checking and inserting under one advisory lock: parallel requests
    cannot both take the last slot or both spend one token. A refused post spends neither
    the token nor the quota. Returns the decision and the new report's reference (None
    when refused). `now` is the service's clock (unix time), the one tokens are dated by.
    """
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_RATE_LOCK,))
        cur.execute("DELETE FROM report_spent_tokens WHERE expires_at < %s", (now,))
        cur.execute("SELECT 1 FROM report_spent_tokens WHERE nonce = %s", (token_nonce,))
        if cur.fetchone() is not None:
            return RateDecision(False, replayed=True), None
        cur.execute("DELETE FROM report_submissions WHERE submitted_at < now() - interval '1 hour'")
        cur.execute(
            "SELECT count(*), min(submitted_at) FROM report_submissions WHERE client_hash = %s",
            (client,),
        )
        mine, my_oldest = cur.fetchone() or (0, None)
        cur.execute("SELECT count(*), min(submitted_at) FROM report_submissions")
        everyone, oldest = cur.fetchone() or (0, None)
        flood = everyone >= quota.global_
        for refused, first in (
            (mine >= quota.per_client, my_oldest),
            (everyone >= quota.ceiling, oldest),
            (flood and mine >= 1, my_oldest),
        ):
            if refused:
                cur.execute(
                    "SELECT ceil(extract(epoch FROM %s + interval '1 hour' - now()))::int",
                    (first,),
                )
                wait = cur.fetchone()
                return RateDecision(False, max(1, int(wait[0]) if wait else 3600)), None
        reference = _insert_report(cur, report)
        cur.execute("INSERT INTO report_submissions (client_hash) VALUES (%s)", (client,))
        cur.execute(
            "INSERT INTO report_spent_tokens (nonce, expires_at) VALUES (%s, %s)",
            (token_nonce, token_expires_at),
        )
    return RateDecision(True), reference


def _insert_report(cur: psycopg2.extensions.cursor, report: NewReport) -> str:
    while True:  # 32^6 references: a collision is rare, retried under a savepoint
        reference = new_reference()
        cur.execute("SAVEPOINT new_reference")
        try:
            cur.execute(
                "INSERT INTO reports (id, content_kind, link, description, contact_email) "
                "VALUES (%s, %s, %s, %s, %s)",
                (
                    reference,
                    report.content_kind,
                    report.link,
                    report.description,
                    report.contact_email,
                ),
            )
        except psycopg2.errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT new_reference")
            continue
        return reference


_REPORT_COLUMNS = (
    "id, created_at, content_kind, link, description, contact_email, status, "
    "notify_pending, notified_at, archived_at"
)


def list_reports(conn: Connection, status: str | None = None) -> list[Report]:
    """Newest first; `status` is open, taken_down, dismissed, archived or None (all)."""
    where, args = "", tuple[str, ...]()
    if status == "archived":
        where = "WHERE archived_at IS NOT NULL"
    elif status is not None:
        where, args = "WHERE status = %s AND archived_at IS NULL", (status,)
    with conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT {_REPORT_COLUMNS} FROM reports {where} ORDER BY created_at DESC",  # noqa: S608 - fixed fragments
            args,
        )
        return [_report(row) for row in cur.fetchall()]


def get_report(conn: Connection, report_id: str) -> Report:
    with conn, conn.cursor() as cur:
        cur.execute(f"SELECT {_REPORT_COLUMNS} FROM reports WHERE id = %s", (report_id,))  # noqa: S608
        row = cur.fetchone()
        if row is None:
            raise ReportNotFoundError(report_id)
        cur.execute(
            "SELECT action, decided_by, decided_at, note, share_ids FROM report_decisions "
            "WHERE report_id = %s ORDER BY decided_at, id",
            (report_id,),
        )
        decisions = tuple(
            Decision(action, by, at, note, tuple(ids)) for action, by, at, note, ids in cur
        )
    return _report(row, decisions)


def record_decision(
    conn: Connection,
    report_id: str,
    action: str,
    decided_by: str,
    note: str,
    share_ids: Sequence[str],
    reopen: bool = False,
) -> Report:
    """Append a decision and move the report to its status.

    Refused (DecisionConflictError) on an archived report, and on a closed one unless `reopen`
    (a moderator revising a decision says so); `reopen` as the action reopens a closed one.
    """
    if action not in ACTIONS:
        raise ValueError(action)
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT status, archived_at FROM reports WHERE id = %s FOR UPDATE", (report_id,)
        )
        row = cur.fetchone()
        if row is None:
            raise ReportNotFoundError(report_id)
        status, archived_at = row
        if archived_at is not None:
            raise DecisionConflictError(f"{report_id} is archived: no more decisions")
        if action == "reopen" and status == "open":
            raise DecisionConflictError(f"{report_id} is open already")
        if status != "open" and action != "reopen" and not reopen:
            raise DecisionConflictError(
                f"{report_id} is closed ({status}): send reopen to revise the decision"
            )
        cur.execute(
            "INSERT INTO report_decisions (report_id, action, decided_by, note, share_ids) "
            "VALUES (%s, %s, %s, %s, %s)",
            (report_id, action, decided_by, note, list(share_ids)),
        )
        cur.execute(
            "UPDATE reports SET status = %s WHERE id = %s", (_STATUS_AFTER[action], report_id)
        )
    return get_report(conn, report_id)


def pending_notifications(conn: Connection, limit: int) -> list[Report]:
    with conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT {_REPORT_COLUMNS} FROM reports "  # noqa: S608
            "WHERE notify_pending AND archived_at IS NULL ORDER BY created_at LIMIT %s",
            (limit,),
        )
        return [_report(row) for row in cur.fetchall()]


@contextmanager
def claim_notification(conn: Connection, report_id: str) -> Iterator[Report | None]:
    """Lock one pending report's row while its mail is sent: yields the report, or None
    when another worker holds it or it was mailed meanwhile. Marked mailed when the block
    ends without an error; an error leaves it pending."""
    with conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT {_REPORT_COLUMNS} FROM reports "  # noqa: S608
            "WHERE id = %s AND notify_pending FOR UPDATE SKIP LOCKED",
            (report_id,),
        )
        row = cur.fetchone()
        yield _report(row) if row is not None else None
        if row is not None:
            cur.execute(
                "UPDATE reports SET notify_pending = false, notified_at = now() WHERE id = %s",
                (report_id,),
            )


def archive_expired(
    conn: Connection, retention_days: int, before: datetime | None = None
) -> PurgeResult:
    """Archive (retention.yml illicit_content_reports, at_expiry: archive) every report
    created more than `retention_days` ago, or before `before` if that is earlier (never
    later: a caller cannot archive a report still within its retention).

    Archiving keeps what proves the report was handled: reference, dates, kind, reported
    link, status and the decisions (action, who, when, share ids). It blanks the free text
    that may hold personal data: the description, the reporter's e-mail and the decisions'
    notes. Idempotent: archived reports are not touched again.
    """
    with conn, conn.cursor() as cur:
        cutoff = _cutoff(cur, retention_days, before)
        cur.execute(
            "UPDATE reports SET description = NULL, contact_email = NULL, archived_at = now(), "
            "notify_pending = false "
            "WHERE created_at < %s AND archived_at IS NULL RETURNING id",
            (cutoff,),
        )
        archived = tuple(sorted(r[0] for r in cur.fetchall()))
        if archived:
            cur.execute(
                "UPDATE report_decisions SET note = '' WHERE report_id = ANY(%s)",
                (list(archived),),
            )
        cur.execute("DELETE FROM report_submissions WHERE submitted_at < now() - interval '1 hour'")
        cur.execute("DELETE FROM report_salts WHERE day < current_date")
        cur.execute("DELETE FROM report_spent_tokens WHERE expires_at < extract(epoch FROM now())")
    return PurgeResult(cutoff, archived)


def count_expired(conn: Connection, before: datetime) -> int:
    """Reports created before `before` and not archived yet (what a purge then archives)."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM reports WHERE created_at < %s AND archived_at IS NULL",
            (before,),
        )
        row = cur.fetchone()
    return int(row[0]) if row else 0


def _cutoff(
    cur: psycopg2.extensions.cursor, retention_days: int, before: datetime | None
) -> datetime:
    cur.execute("SELECT now() - make_interval(days => %s)", (retention_days,))
    row = cur.fetchone()
    assert row is not None
    cutoff: datetime = row[0]
    return min(cutoff, before) if before is not None else cutoff


def ping(conn: Connection) -> None:
    with conn, conn.cursor() as cur:
        cur.execute("SELECT 1")


def _report(row: Sequence[Any], decisions: tuple[Decision, ...] = ()) -> Report:
    (report_id, created_at, kind, link, description, contact, status, pending, notified,
     archived) = row  # fmt: skip
    return Report(
        report_id, created_at, kind, link, description, contact, status, pending, notified,
        archived, decisions,
    )  # fmt: skip
