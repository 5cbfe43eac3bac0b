"""The service's configuration: one YAML file (see the package's docstring for its keys)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_MAX_BODY_BYTES = 16384
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_MIN_SECRET_BYTES = 32
# A form's token lives at most a day: a longer one could be fetched in bulk and spent later.
_TOKEN_MAX_AGE_LIMIT = 24 * 3600
# The per-client quota is at most this share of the global one: fewer clients than that
# cannot reach the global quota.
_GLOBAL_TO_CLIENT_RATIO = 10
_HOST_NAME = re.compile(
    r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


class ConfigError(Exception):
    """The configuration file is missing, unreadable or wrong; the message says which key."""


@dataclass(frozen=True)
class DatabaseConfig:
    dbname: str
    user: str
    host: str | None = None
    """A host name, or a directory holding the server's unix socket; None: libpq's default."""
    port: int | None = None
    password: str | None = field(default=None, repr=False)

    def connect_kwargs(self) -> dict[str, Any]:
        """psycopg2.connect's keyword arguments."""
        kwargs: dict[str, Any] = {"dbname": self.dbname, "user": self.user}
        if self.host:
            kwargs["host"] = self.host
        if self.port:
            kwargs["port"] = self.port
        if self.password:
            kwargs["password"] = self.password
        return kwargs


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    sender: str
    moderators: tuple[str, ...]
    starttls: bool = False
    timeout: float = 10.0


TOKEN_MIN_AGE = 3
TOKEN_MAX_AGE = 30 * 60


@dataclass(frozen=True)
class TokenAges:
    """How old a form's token may be when it is posted, in seconds (form.py)."""

    min_age: int = TOKEN_MIN_AGE
    max_age: int = TOKEN_MAX_AGE


@dataclass(frozen=True)
class RateLimit:
    """Accepted reports per hour. A client is an IPv4 address or an IPv6 /64 (one
    subscriber's network: its addresses are counted together).

    Past `global_per_hour`, a flood is on: each client may still send one report an hour
    (a few clients can no longer lock everyone else out), until `ceiling_per_hour` in all,
    which bounds the database and the moderators' mailbox whatever the number of clients.
    """

    per_address_per_hour: int = 5
    global_per_hour: int = 200
    ceiling_per_hour: int = 1000


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig
    smtp: SmtpConfig
    form_secret: bytes = field(repr=False)
    moderation_token_sha256: str = field(repr=False)
    retention_days: int
    public_base_path: str = "/signalement"
    platform_name: str = "educloud"
    privacy_url: str = "/confidentialite"
    platform_hosts: tuple[str, ...] = ()
    """Host names a reported link may point to; empty: the Host the form is served on."""
    site_hosts: tuple[str, ...] = ()
    """The deployment's sites whose pages may post the form (https://<name> as Origin or
    Referer); empty: only the site the form is posted to."""
    form_token: TokenAges = field(default_factory=TokenAges)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    rate_limit: RateLimit = field(default_factory=RateLimit)
    trusted_proxies: tuple[str, ...] = ("127.0.0.1",)


def load(path: str | Path) -> Config:
    """Read and check the YAML file; secrets are read from the files it names."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings")
    return from_mapping(raw, source=str(path))


def from_mapping(raw: dict[str, Any], source: str = "configuration") -> Config:
    def need(mapping: dict[str, Any], key: str, kind: type, where: str) -> Any:
        value = mapping.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool):
            raise ConfigError(f"{source}: {where}{key} must be a {kind.__name__}")
        return value

    def section(key: str) -> dict[str, Any]:
        value = raw.get(key)
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} must be a mapping")
        return value

    db = section("database")
    password_file = db.get("password_file")
    smtp = section("smtp")
    moderators = smtp.get("moderators")
    if (
        not isinstance(moderators, list)
        or not moderators
        or not all(isinstance(m, str) and "@" in m for m in moderators)
    ):
        raise ConfigError(f"{source}: smtp.moderators must be a non-empty list of e-mails")
    token_hash = str(raw.get("moderation_token_sha256", "")).lower()
    if not _SHA256_HEX.match(token_hash):
        raise ConfigError(f"{source}: moderation_token_sha256 must be 64 hex digits")
    secret = _read_secret(need(raw, "form_secret_file", str, ""), source, "form_secret_file")
    secret_bytes = secret.encode()
    if len(secret_bytes) < _MIN_SECRET_BYTES:
        raise ConfigError(f"{source}: form_secret_file must hold at least 32 characters")
    limits = raw.get("rate_limit") or {}
    base_path = str(raw.get("public_base_path", "/signalement")).rstrip("/")
    if not base_path.startswith("/"):
        raise ConfigError(f"{source}: public_base_path must start with /")
    max_body = int(raw.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES))
    if max_body < 1024:
        raise ConfigError(f"{source}: max_body_bytes below 1024 cannot hold a report")
    rate_limit = _rate_limit(limits, source)
    form_token = _token_ages(raw.get("form_token") or {}, source)
    site_hosts = _host_names(raw.get("site_hosts") or [], source, "site_hosts")
    return Config(
        database=DatabaseConfig(
            dbname=need(db, "dbname", str, "database."),
            user=need(db, "user", str, "database."),
            host=str(db["host"]) if db.get("host") else None,
            port=int(db["port"]) if db.get("port") else None,
            password=(
                _read_secret(password_file, source, "database.password_file")
                if password_file
                else None
            ),
        ),
        smtp=SmtpConfig(
            host=need(smtp, "host", str, "smtp."),
            port=int(smtp.get("port", 25)),
            sender=need(smtp, "sender", str, "smtp."),
            moderators=tuple(moderators),
            starttls=bool(smtp.get("starttls", False)),
            timeout=float(smtp.get("timeout", 10.0)),
        ),
        form_secret=secret_bytes,
        moderation_token_sha256=token_hash,
        retention_days=need(raw, "retention_days", int, ""),
        public_base_path=base_path,
        platform_name=str(raw.get("platform_name", "educloud")),
        privacy_url=str(raw.get("privacy_url", "/confidentialite")),
        platform_hosts=tuple(h.lower() for h in raw.get("platform_hosts") or ()),
        site_hosts=site_hosts,
        form_token=form_token,
        max_body_bytes=max_body,
        rate_limit=rate_limit,
        trusted_proxies=tuple(str(p) for p in raw.get("trusted_proxies", ["127.0.0.1"])),
    )


def _whole_number(mapping: dict[str, Any], key: str, default: int, source: str, where: str) -> int:
    value = mapping.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{source}: {where}{key} must be a whole number of 0 or more")
    return value


def _rate_limit(limits: Any, source: str) -> RateLimit:
    if not isinstance(limits, dict):
        raise ConfigError(f"{source}: rate_limit must be a mapping")
    per_client = _whole_number(limits, "per_address_per_hour", 5, source, "rate_limit.")
    global_ = _whole_number(limits, "global_per_hour", 200, source, "rate_limit.")
    ceiling = _whole_number(limits, "ceiling_per_hour", max(1000, global_), source, "rate_limit.")
    if per_client < 1:
        raise ConfigError(f"{source}: rate_limit.per_address_per_hour must be 1 or more")
    if global_ < _GLOBAL_TO_CLIENT_RATIO * per_client:
        raise ConfigError(
            f"{source}: rate_limit.global_per_hour ({global_}) must be at least "
            f"{_GLOBAL_TO_CLIENT_RATIO} times rate_limit.per_address_per_hour ({per_client}): "
            "otherwise a few clients exhaust it"
        )
    if ceiling < global_:
        raise ConfigError(
            f"{source}: rate_limit.ceiling_per_hour ({ceiling}) must be at least "
            f"rate_limit.global_per_hour ({global_})"
        )
    return RateLimit(per_client, global_, ceiling)


def _token_ages(raw: Any, source: str) -> TokenAges:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: form_token must be a mapping")
    min_age = _whole_number(raw, "min_age_seconds", TOKEN_MIN_AGE, source, "form_token.")
    max_age = _whole_number(raw, "max_age_seconds", TOKEN_MAX_AGE, source, "form_token.")
    if not min_age < max_age <= _TOKEN_MAX_AGE_LIMIT:
        raise ConfigError(
            f"{source}: form_token.max_age_seconds ({max_age}) must be above "
            f"form_token.min_age_seconds ({min_age}) and at most {_TOKEN_MAX_AGE_LIMIT} (a day)"
        )
    return TokenAges(min_age, max_age)


def _host_names(raw: Any, source: str, key: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(
        isinstance(h, str) and _HOST_NAME.match(h.lower()) for h in raw
    ):
        raise ConfigError(f"{source}: {key} must be a list of host names (no scheme, no port)")
    return tuple(h.lower() for h in raw)


def _read_secret(path: str, source: str, key: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{source}: {key}: cannot read {path}: {exc.strerror}") from exc
