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


@dataclass(frozen=True)
class RateLimit:
    per_address_per_hour: int = 5
    global_per_hour: int = 200


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
        max_body_bytes=max_body,
        rate_limit=RateLimit(
            per_address_per_hour=int(limits.get("per_address_per_hour", 5)),
            global_per_hour=int(limits.get("global_per_hour", 200)),
        ),
        trusted_proxies=tuple(str(p) for p in raw.get("trusted_proxies", ["127.0.0.1"])),
    )


def _read_secret(path: str, source: str, key: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{source}: {key}: cannot read {path}: {exc.strerror}") from exc
