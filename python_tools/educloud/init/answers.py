"""The operator's answers to `educloud init`, checked before anything is written.

Answers come from the command's flags, from the answers an earlier run saved in the folder
(`educloud-init.yml`, no secret in it), and, on a terminal, from questions. Each is checked
on its own (`normalize`), then together (`build`): a problem names the flag, the value and
what to write instead. What depends on the policies (the provider, the country) is checked
when the policies copy is known (educloud.init.policies).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from educloud import sshkeys
from educloud.errors import EducloudError
from educloud.init.questions import (
    BY_KEY,
    CERTIFICATE_SOURCES,
    PROFILES,
    QUESTIONS,
    TIERS,
    Question,
)

# The roles' pattern of a plain e-mail address (backup and reporting validate.yml).
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+\.)+[A-Za-z][A-Za-z0-9-]*$")
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# An inventory name that also makes a valid account name on the backup target
# ("backup-" + name: 32 characters at most).
_HOST_NAME = re.compile(r"^[a-z][a-z0-9-]{0,24}$")
_REALM = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_PROVIDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_INTERFACE = re.compile(r"^[A-Za-z0-9._-]{1,15}$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_ACME = re.compile(r"^https://[^/\s]+/\S*$")
# The backup role's patterns (roles/backup/tasks/validate.yml).
_SFTP_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_S3_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
_HOST_KEY_TYPES = sshkeys.HOST_KEY_TYPES
_PROVIDER_FORMS = "sftp://USER@ADDRESS[:PORT]/PATH or s3://ADDRESS[:PORT]/BUCKET[/PREFIX]"
# The provider's keys for s3, from --backup-provider-credentials: into the vault only.
CREDENTIAL_LINES = {
    "AWS_ACCESS_KEY_ID": "vault_backup_s3_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "vault_backup_s3_secret_access_key",
}

RawValue = str | list[str] | bool
Raw = dict[str, RawValue]


class AnswerError(EducloudError):
    """Answers that cannot be used, each problem naming its flag."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid answers, nothing written: " + "; ".join(problems))


@dataclass(frozen=True)
class Host:
    name: str
    address: str

    @property
    def answer(self) -> str:
        return f"{self.name}={self.address}"


@dataclass(frozen=True)
class Endpoint:
    address: str
    port: int

    @property
    def answer(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class Mirror:
    url: str  # normalized, without a trailing slash
    address: str
    port: int


@dataclass(frozen=True)
class ObjectStorage:
    endpoint: Endpoint
    bucket: str
    region: str


@dataclass(frozen=True)
class BackupProvider:
    """Where backups go when not to a backup server of the inventory (--backup-provider)."""

    kind: str  # sftp or s3
    url: str  # normalized
    address: str
    port: int
    user: str = ""  # sftp: the account
    path: str = ""  # sftp: the base directory (relative to the account's home, or absolute)
    host_key: str = ""  # sftp: the server's public host key, pinned
    bucket: str = ""  # s3
    prefix: str = ""  # s3: "" = each host's inventory name
    endpoint: str = ""  # s3: the name its certificate gives ("" = the address)
    ca_certificate: str = ""  # s3: PEM of its CA ("" = the system's)


@dataclass(frozen=True)
class Answers:
    profile: str
    public_domain: str
    auth_name: str
    auth_admin_name: str
    cloud_name: str
    organisation: str
    postal_address: tuple[str, ...]
    realm: str
    hosts: tuple[Host, ...]
    backup_host: Host | None  # None: backups at a provider (backup_provider)
    floating_address: str  # "" on a single server
    provider: str
    country: str  # "" until the provider's country is known (educloud.init.policies)
    datacenter: str
    admin_networks: tuple[str, ...]
    apt_mirror: Mirror
    artifact_mirror: Mirror
    smtp_relay: Endpoint
    smtp_starttls: bool
    mail_sender: str
    operator_email: str
    dpo_email: str
    reporting_email: str
    certificates: str  # files, acme or internal
    acme_directory: str
    acme_address: str  # the CA's address or network (egress.yml), "" unless acme
    dns_servers: tuple[str, ...]
    ntp_servers: tuple[str, ...]
    ssh_user: str
    ssh_key: str
    object_storage: ObjectStorage | None
    vrrp_interface: str
    backup_provider: BackupProvider | None = None

    @property
    def regional(self) -> bool:
        return self.profile == "regional"

    @property
    def certificate_source(self) -> str:
        return CERTIFICATE_SOURCES[self.certificates]

    @property
    def sites(self) -> tuple[str, str, str]:
        return (self.auth_name, self.auth_admin_name, self.cloud_name)

    def tier(self, prefix: str) -> tuple[Host, ...]:
        """The regional hosts of one tier (lb, kc, nc, db), in their given order."""
        return tuple(h for h in self.hosts if _tier_of(h.name) == prefix)

    @property
    def backup_clients(self) -> tuple[str, ...]:
        """The hosts that hold data, each backed up with its own key (C10)."""
        if not self.regional:
            return (self.hosts[0].name,)
        holders = [h.name for h in self.hosts if _tier_of(h.name) in {"kc", "nc", "db"}]
        # The first load balancer: the report service and the retention journal.
        return (*holders, self.tier("lb")[0].name)


def _tier_of(name: str) -> str:
    return name[:2]


def applies(question: Question, profile: str) -> bool:
    return profile in question.profiles


# --- Each answer on its own ---------------------------------------------------------------


def _address(value: str, what: str) -> str:
    try:
        address = ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address ({what})") from None
    if address.is_loopback or address.is_unspecified or address.is_multicast:
        raise ValueError(f"{value} is not an address another machine can reach ({what})")
    return str(address)


def _name(value: str, flag: str) -> str:
    raw = value.strip()
    if "://" in raw:
        raise ValueError(f"{raw!r} has a scheme: give the name alone, e.g. ecoles.ville.fr")
    if "/" in raw or ":" in raw or any(c.isspace() for c in raw):
        raise ValueError(f"{raw!r} is not a DNS name (no path, port or space)")
    try:
        name = raw.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError(f"{raw!r} is not a DNS name") from None
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        raise ValueError(f"{raw!r} is an address: {flag} wants a DNS name")
    labels = name.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{raw!r} is not a DNS name with at least one dot, e.g. ecoles.ville.fr")
    if not labels[-1][0].isalpha() or len(name) > 240:
        raise ValueError(f"{raw!r} is not a DNS name")
    return name


def _host(value: str) -> str:
    name, sep, address = value.partition("=")
    name = name.strip().lower()
    if not sep:
        raise ValueError(f"{value!r} is not NAME=ADDRESS, e.g. serveur=192.0.2.10")
    if not _HOST_NAME.match(name):
        raise ValueError(
            f"{name!r} is not a host name for the inventory (lower-case letters, digits and "
            "'-', starting with a letter, 25 characters at most)"
        )
    return f"{name}={_address(address, f'the address of {name}')}"


def _network(value: str) -> str:
    raw = value.strip()
    try:
        network = ipaddress.ip_network(raw, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(raw, strict=False)
        except ValueError:
            raise ValueError(f"{raw!r} is not a network (CIDR, e.g. 192.0.2.0/24)") from None
        raise ValueError(f"{raw} has host bits set: write {loose}") from None
    if network.prefixlen == 0:
        raise ValueError(f"{raw} is every address: name your administrators' networks")
    return str(network)


def _endpoint(value: str, default_port: int, what: str) -> str:
    raw = value.strip()
    if "://" in raw:
        raise ValueError(f"{raw!r}: give ADDRESS[:PORT], without a scheme ({what})")
    if raw.startswith("["):
        host, _, rest = raw[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif raw.count(":") == 1:
        host, _, port_text = raw.partition(":")
    else:
        host, port_text = raw, ""
    address = _address(host, what)
    port = _port(port_text, default_port, raw)
    return Endpoint(address, port).answer


def _port(text: str, default: int, raw: str) -> int:
    if not text:
        return default
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{raw!r}: {text!r} is not a port")
    return int(text)


def _mirror(value: str, what: str) -> str:
    raw = value.strip()
    parts = urlsplit(raw if "://" in raw else f"http://{raw}")
    if parts.scheme not in {"http", "https"}:
        raise ValueError(f"{raw!r} is not an http(s) URL ({what})")
    if parts.query or parts.fragment or parts.username:
        raise ValueError(f"{raw!r}: no query, fragment or user in the URL ({what})")
    try:
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"{raw!r} is not a URL ({what})") from None
    try:
        address = _address(host, what)
    except ValueError:
        raise ValueError(
            f"{raw!r}: give the {what} by IP address, the servers' firewall allows addresses "
            "only (policies/egress.yml)"
        ) from None
    shown = f"[{address}]" if ":" in address else address
    return f"{parts.scheme}://{shown}:{port}{parts.path.rstrip('/')}"


def _provider_url(value: str) -> str:
    """--backup-provider: sftp://USER@ADDRESS[:PORT]/PATH or s3://ADDRESS[:PORT]/BUCKET[/PREFIX],
    normalized (a relative sftp path as /PATH, an absolute one as //PATH)."""
    raw = value.strip()
    parts = urlsplit(raw)
    if parts.scheme not in {"sftp", "s3"}:
        raise ValueError(f"{raw!r} is not {_PROVIDER_FORMS}")
    if parts.query or parts.fragment or parts.password is not None:
        raise ValueError(f"{raw!r}: no query, fragment or password in the URL")
    try:
        host = parts.hostname or ""
        port = parts.port or (22 if parts.scheme == "sftp" else 443)
    except ValueError:
        raise ValueError(f"{raw!r}: not a valid port ({_PROVIDER_FORMS})") from None
    try:
        address = _address(host, "the backup provider")
    except ValueError:
        raise ValueError(
            f"{raw!r}: give the provider by IP address, the servers' firewall allows addresses "
            "only (policies/egress.yml)"
        ) from None
    shown = f"[{address}]" if ":" in address else address
    if parts.scheme == "sftp":
        user = parts.username or ""
        if not _SFTP_USER.match(user):
            raise ValueError(f"{raw!r}: give the provider's account, sftp://USER@ADDRESS/PATH")
        absolute = parts.path.startswith("//")
        path = parts.path.strip("/")
        if not path or "//" in path or any(c.isspace() or c == ":" for c in path):
            raise ValueError(
                f"{raw!r}: give the directory on the account (relative to its home, or "
                "//absolute/path), without space nor colon"
            )
        return f"sftp://{user}@{shown}:{port}/{'/' if absolute else ''}{path}"
    if parts.username is not None:
        raise ValueError(f"{raw!r}: no user in an s3 URL (the keys: --backup-provider-credentials)")
    bucket, _, prefix = parts.path.strip("/").partition("/")
    if not _BUCKET.match(bucket):
        raise ValueError(f"{raw!r}: {bucket!r} is not an S3 bucket name")
    if prefix and (not _S3_PREFIX.match(prefix) or "//" in prefix):
        raise ValueError(f"{raw!r}: {prefix!r} is not a prefix (letters, digits, . _ - /)")
    return f"s3://{shown}:{port}/{bucket}" + (f"/{prefix}" if prefix else "")


def _host_key(value: str) -> str:
    kind, blob = sshkeys.parse_public_key(value, _HOST_KEY_TYPES)
    if len(blob) < 40:
        raise ValueError(f"the key's data is not a {kind} key")
    return f"{kind} {blob}"


def _pem_file(value: str) -> str:
    path = Path(value.strip()).expanduser()
    if not path.is_file():
        raise ValueError(f"{value!r}: no such file")
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        raise ValueError(f"{value!r}: not a PEM file") from None
    if "-----BEGIN CERTIFICATE-----" not in text or "-----END CERTIFICATE-----" not in text:
        raise ValueError(f"{value!r}: no PEM certificate in it (-----BEGIN CERTIFICATE-----)")
    return str(path.resolve())


def read_credentials(path: Path) -> dict[str, str]:
    """--backup-provider-credentials: the vault's S3 keys from a file of AWS_ACCESS_KEY_ID=...
    and AWS_SECRET_ACCESS_KEY=... lines. Problems never show a value."""
    flag = "--backup-provider-credentials"
    try:
        lines = path.expanduser().read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        raise AnswerError([f"{flag}: {str(path)!r}: no such readable file"]) from None
    found: dict[str, str] = {}
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        key, sep, value = text.removeprefix("export ").partition("=")
        value = value.strip().strip("'\"")
        if sep and key.strip() in CREDENTIAL_LINES:
            found[CREDENTIAL_LINES[key.strip()]] = value
    problems = []
    for line, name in CREDENTIAL_LINES.items():
        if name not in found:
            problems.append(f"{flag}: {path} has no {line}=... line")
    key_id = found.get(CREDENTIAL_LINES["AWS_ACCESS_KEY_ID"])
    if key_id is not None and not re.match(r"^[^\s=]+$", key_id):
        problems.append(f"{flag}: {path}: AWS_ACCESS_KEY_ID is empty or has a space or '='")
    secret = found.get(CREDENTIAL_LINES["AWS_SECRET_ACCESS_KEY"])
    if secret is not None and not re.match(r"^\S{8,}$", secret):
        problems.append(
            f"{flag}: {path}: AWS_SECRET_ACCESS_KEY is shorter than 8 characters or has a space"
        )
    if problems:
        raise AnswerError(problems)
    return found


def _email(value: str) -> str:
    raw = value.strip()
    if not _EMAIL.match(raw):
        raise ValueError(f"{raw!r} is not a plain e-mail address")
    return raw


def _matching(pattern: re.Pattern[str], value: str, what: str) -> str:
    raw = value.strip()
    if not pattern.match(raw):
        raise ValueError(f"{raw!r} is not {what}")
    return raw


def _one(key: str, value: str) -> str:
    """One answer, normalized; ValueError says what is wrong with it."""
    flag = BY_KEY[key].flag
    match key:
        case "public_domain" | "auth_name" | "auth_admin_name" | "cloud_name":
            return _name(value, flag)
        case "organisation":
            text = " ".join(value.split())
            if not text:
                raise ValueError("the organisation's name is empty")
            return text
        case "postal_address":
            lines = [" ".join(line.split()) for line in value.split(";")]
            if not any(lines):
                raise ValueError("the postal address is empty")
            return "; ".join(line for line in lines if line)
        case "hosts" | "backup_host":
            return _host(value)
        case "floating_address":
            return _address(value, "the floating address")
        case "backup_provider":
            return _provider_url(value)
        case "backup_provider_host_key":
            return _host_key(value)
        case "backup_provider_name":
            return _name(value, flag)
        case "backup_provider_ca":
            return _pem_file(value)
        case "provider":
            return _matching(_PROVIDER, value, "a provider id of hosting.yml")
        case "country":
            return _matching(re.compile(r"^[A-Z]{2}$"), value.upper(), "a country code (FR)")
        case "datacenter":
            text = value.strip()
            if not text or "\n" in text or len(text) > 100:
                raise ValueError(f"{value!r} is not a datacenter id of hosting.yml")
            return text
        case "admin_networks":
            return _network(value)
        case "apt_mirror":
            return _mirror(value, "package mirror")
        case "artifact_mirror":
            return _mirror(value, "artifact mirror")
        case "smtp_relay":
            return _endpoint(value, 25, "the mail relay")
        case "object_storage":
            return _endpoint(value, 443, "the object storage")
        case "operator_email" | "dpo_email" | "reporting_email" | "mail_sender":
            return _email(value)
        case "certificates":
            text = value.strip().lower()
            if text not in CERTIFICATE_SOURCES:
                raise ValueError(f"{value!r} is not one of {', '.join(CERTIFICATE_SOURCES)}")
            return text
        case "acme_directory":
            return _matching(_ACME, value, "an https URL with a path (the ACME directory)")
        case "acme_address":
            if "/" in value:
                return _network(value)
            return _address(value, "the ACME CA")
        case "dns_servers" | "ntp_servers":
            return _address(value, "a server")
        case "ssh_user":
            return _matching(_USER, value, "a user name")
        case "ssh_key":
            path = Path(value.strip()).expanduser()
            if not path.is_file():
                raise ValueError(f"{value!r}: no such file")
            return str(path.resolve())
        case "realm":
            text = _matching(_REALM, value.lower(), "a realm name (lower case, digits, '-')")
            if text == "master":
                raise ValueError("master is Keycloak's own realm: choose another name")
            return text
        case "object_storage_bucket":
            return _matching(_BUCKET, value, "an S3 bucket name")
        case "object_storage_region":
            return _matching(_REGION, value, "an S3 region")
        case "vrrp_interface":
            return _matching(_INTERFACE, value, "a network interface name")
    raise ValueError(f"unknown answer {key}")  # pragma: no cover - every key is listed


def split_many(value: str) -> list[str]:
    """A prompt's answer to a repeatable question: comma-separated values."""
    return [part.strip() for part in value.split(",") if part.strip()]


def normalize_one(key: str, value: RawValue) -> RawValue:
    """One answer in its saved form; ValueError names what is wrong."""
    question = BY_KEY[key]
    if question.flag_value:
        if not isinstance(value, bool):
            raise ValueError(f"{question.flag} is a switch (true or false)")
        return value
    if question.many:
        values = value if isinstance(value, list) else split_many(str(value))
        return [_one(key, str(v)) for v in values]
    if isinstance(value, list | bool):
        raise ValueError(f"{question.flag} takes one value")
    return _one(key, value)


def normalize(raw: Mapping[str, RawValue], profile: str) -> Raw:
    """Every given answer in its saved form; AnswerError lists every problem."""
    problems: list[str] = []
    normalized: Raw = {}
    for key, value in raw.items():
        question = BY_KEY.get(key)
        if question is None:
            problems.append(f"unknown answer {key!r}")
            continue
        if not applies(question, profile):
            problems.append(f"{question.flag} is for the {' or '.join(question.profiles)} profile")
            continue
        try:
            normalized[key] = normalize_one(key, value)
        except ValueError as exc:
            problems.append(f"{question.flag}: {exc}")
    if problems:
        raise AnswerError(problems)
    return normalized


_PROVIDER_KEYS = (
    "backup_provider",
    "backup_provider_host_key",
    "backup_provider_name",
    "backup_provider_ca",
)


def merged(saved: Mapping[str, RawValue], given: Mapping[str, RawValue]) -> Raw:
    """The saved answers with the given ones over them; a given --backup-host replaces a
    saved provider and its answers, a given --backup-provider a saved backup server."""
    base = dict(saved)
    if given.get("backup_host"):
        for key in _PROVIDER_KEYS:
            base.pop(key, None)
    if given.get("backup_provider"):
        base.pop("backup_host", None)
        if (
            str(given["backup_provider"]).split(":", 1)[0]
            != str(base.get("backup_provider", "")).split(":", 1)[0]
        ):
            for key in _PROVIDER_KEYS[1:]:
                base.pop(key, None)  # another kind of provider: its answers do not carry
    return {**base, **given}


def missing(raw: Mapping[str, RawValue], profile: str) -> list[Question]:
    """The questions still to answer (to ask on a terminal, or to refuse without one)."""
    provider = raw.get("backup_provider")
    # Exactly one of --backup-host and --backup-provider: a terminal asks for a backup server.
    wanted = [
        q
        for q in QUESTIONS
        if (q.required or (q.key == "backup_host" and not provider)) and applies(q, profile)
    ]
    if isinstance(provider, str) and provider.startswith("sftp://"):
        wanted.append(BY_KEY["backup_provider_host_key"])
    if raw.get("certificates") == "acme":
        wanted += [BY_KEY["acme_directory"], BY_KEY["acme_address"]]
    return [q for q in wanted if raw.get(q.key) in (None, "", [])]


# --- The answers together -----------------------------------------------------------------


def _hosts(values: list[str]) -> tuple[Host, ...]:
    return tuple(Host(*value.split("=", 1)) for value in values)


def _check_hosts(answers: Answers, problems: list[str]) -> None:
    backup = (answers.backup_host,) if answers.backup_host else ()
    names = [h.name for h in (*answers.hosts, *backup)]
    addresses = [h.address for h in (*answers.hosts, *backup)]
    if answers.floating_address:
        addresses.append(answers.floating_address)
    provider = answers.backup_provider
    if provider is not None and provider.address in addresses:
        problems.append(
            f"--backup-provider: {provider.address} is an address of this deployment: backups "
            "go to another machine than the data, at the provider"
        )
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"--host/--backup-host: {name} is named twice")
    for address in sorted({a for a in addresses if addresses.count(a) > 1}):
        problems.append(
            f"--host/--backup-host/--floating-address: {address} is given twice (each server "
            "has its own address, the floating address none of theirs)"
        )
    if not answers.regional:
        if len(answers.hosts) != 1:
            problems.append(
                f"--host: the single profile has one server, not {len(answers.hosts)} "
                "(the backup server is --backup-host)"
            )
        return
    unknown = [h.name for h in answers.hosts if _tier_of(h.name) not in TIERS]
    if unknown:
        tiers = ", ".join(f"{prefix} ({what})" for prefix, what in TIERS.items())
        problems.append(
            f"--host: {', '.join(unknown)}: a regional host's name starts with its tier: {tiers}"
        )
    least = {"lb": 2, "kc": 2, "nc": 2, "db": 3}
    for prefix, count in least.items():
        found = len(answers.tier(prefix))
        if found < count:
            problems.append(
                f"--host: the regional profile needs at least {count} {prefix}* hosts "
                f"({TIERS[prefix]}), got {found}"
            )
    databases = len(answers.tier("db"))
    if databases >= 3 and databases % 2 == 0:
        problems.append(
            f"--host: {databases} database nodes: etcd needs an odd number (3 or 5) to keep "
            "a quorum"
        )


def build(raw: Mapping[str, RawValue], profile: str) -> Answers:
    """The answers, from normalized raw answers (`normalize`), with their defaults; checks
    what holds between answers (counts, duplicates). Raises AnswerError."""
    if profile not in PROFILES:
        raise AnswerError([f"--profile: {profile!r} is not one of {', '.join(PROFILES)}"])
    absent = missing(raw, profile)
    if absent:
        raise AnswerError([f"{q.flag} is missing" for q in absent])

    def text(key: str, default: str = "") -> str:
        value = raw.get(key)
        return value if isinstance(value, str) else default

    def many(key: str) -> tuple[str, ...]:
        value = raw.get(key)
        return tuple(value) if isinstance(value, list) else ()

    domain = text("public_domain")
    operator = text("operator_email")
    realm = text("realm") or _default_realm(domain)
    storage = None
    if profile == "regional":
        endpoint = text("object_storage").rsplit(":", 1)
        storage = ObjectStorage(
            Endpoint(endpoint[0].strip("[]"), int(endpoint[1])),
            text("object_storage_bucket"),
            text("object_storage_region", "fr"),
        )
    relay = text("smtp_relay").rsplit(":", 1)
    starttls = raw.get("smtp_starttls", True)
    answers = Answers(
        profile=profile,
        public_domain=domain,
        auth_name=text("auth_name") or f"auth.{domain}",
        auth_admin_name=text("auth_admin_name") or f"auth-admin.{domain}",
        cloud_name=text("cloud_name") or f"cloud.{domain}",
        organisation=text("organisation"),
        postal_address=tuple(text("postal_address").split("; ")),
        realm=realm,
        hosts=_hosts(list(many("hosts"))),
        backup_host=_hosts([text("backup_host")])[0] if text("backup_host") else None,
        floating_address=text("floating_address"),
        provider=text("provider"),
        country=text("country"),
        datacenter=text("datacenter"),
        admin_networks=many("admin_networks"),
        apt_mirror=_parsed_mirror(text("apt_mirror")),
        artifact_mirror=_parsed_mirror(text("artifact_mirror")),
        smtp_relay=Endpoint(relay[0].strip("[]"), int(relay[1])),
        smtp_starttls=starttls if isinstance(starttls, bool) else True,
        mail_sender=text("mail_sender") or f"ne-pas-repondre@{domain}",
        operator_email=operator,
        dpo_email=text("dpo_email"),
        reporting_email=text("reporting_email") or operator,
        certificates=text("certificates"),
        acme_directory=text("acme_directory"),
        acme_address=text("acme_address"),
        dns_servers=many("dns_servers"),
        ntp_servers=many("ntp_servers"),
        ssh_user=text("ssh_user", "root"),
        ssh_key=text("ssh_key"),
        object_storage=storage,
        vrrp_interface=text("vrrp_interface", "eth0"),
        backup_provider=_backup_provider(raw) if text("backup_provider") else None,
    )
    problems: list[str] = []
    _check_backup_answers(raw, problems)
    _check_hosts(answers, problems)
    if not _REALM.match(answers.realm) or answers.realm == "master":
        problems.append(
            f"--realm: {answers.realm!r} (from the public domain) is not a realm name: give "
            "--realm, lower case letters, digits and '-'"
        )
    if len(set(answers.sites)) != len(answers.sites):
        problems.append(
            "--auth-name/--auth-admin-name/--cloud-name: the three sites need three names"
        )
    if problems:
        raise AnswerError(problems)
    return answers


def _backup_provider(raw: Mapping[str, RawValue]) -> BackupProvider:
    """The provider of a normalized --backup-provider URL and its other answers."""

    def text(key: str) -> str:
        value = raw.get(key)
        return value if isinstance(value, str) else ""

    url = text("backup_provider")
    parts = urlsplit(url)
    address, port = (parts.hostname or "").strip("[]"), parts.port or 0
    if parts.scheme == "sftp":
        path = parts.path.removeprefix("/")  # "rel" or "/abs"
        return BackupProvider(
            "sftp", url, address, port, user=parts.username or "", path=path,
            host_key=text("backup_provider_host_key"),
        )  # fmt: skip
    bucket, _, prefix = parts.path.strip("/").partition("/")
    ca = text("backup_provider_ca")
    return BackupProvider(
        "s3", url, address, port, bucket=bucket, prefix=prefix,
        endpoint=text("backup_provider_name"),
        ca_certificate=Path(ca).read_text(encoding="ascii").strip() + "\n" if ca else "",
    )  # fmt: skip


def _check_backup_answers(raw: Mapping[str, RawValue], problems: list[str]) -> None:
    """Exactly one of --backup-host and --backup-provider, and only its kind's answers."""
    url = raw.get("backup_provider")
    if raw.get("backup_host") and url:
        problems.append(
            "--backup-host/--backup-provider: give one of the two, a backup server of this "
            "deployment or a provider"
        )
    if not url:
        for key in ("backup_provider_host_key", "backup_provider_name", "backup_provider_ca"):
            if raw.get(key):
                problems.append(f"{BY_KEY[key].flag} is for a --backup-provider")
        return
    kind = "sftp" if str(url).startswith("sftp://") else "s3"
    others = {
        "sftp": ("backup_provider_name", "backup_provider_ca"),
        "s3": ("backup_provider_host_key",),
    }[kind]
    for key in others:
        if raw.get(key):
            problems.append(f"{BY_KEY[key].flag} is not for an {kind} provider")


def _default_realm(domain: str) -> str:
    """The tenant realm's name when not given: the public domain's first label."""
    return re.sub(r"[^a-z0-9-]", "-", domain.split(".")[0])[:63]


def _parsed_mirror(url: str) -> Mirror:
    parts = urlsplit(url)
    return Mirror(url, (parts.hostname or "").strip("[]"), parts.port or 80)


def saved_form(raw: Mapping[str, RawValue]) -> Raw:
    """The answers as `educloud-init.yml` keeps them: in the order of the questions."""
    return {q.key: raw[q.key] for q in QUESTIONS if q.key in raw}
