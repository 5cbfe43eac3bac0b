"""What the charter checks (tests/charter/test_backup.py) judge about backups, as pure
functions of what they read on the hosts: where a backup host sends its repository (C1),
how long its snapshots live (C7), whether the target sees anything but ciphertext (C10)."""

from __future__ import annotations

import codecs
import ipaddress
import json
import shlex
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from educloud import policy
from educloud.policy import Destination

BACKUP_TARGET = "backup_target"
# Groups whose hosts hold the deployment's data: each must be backed up.
DATA_GROUPS = ("postgresql", "keycloak", "nextcloud", "data_rights")
# Text that only a plaintext copy of the data or of a secret holds; the first is a table of
# Keycloak's database, the second what a pg_dump or a schema holds.
KNOWN_PLAINTEXT = (
    "user_entity",
    "CREATE TABLE",
    "BEGIN OPENSSH PRIVATE KEY",
    "db-password=",
    "KC_BOOTSTRAP_ADMIN",
)


@dataclass(frozen=True)
class Endpoint:
    """Where a backup host's agent connects to, read from its backup.json as the agent
    builds its connection (roles/backup/files/educloud_backup_agent.py)."""

    kind: str
    """target (the inventory's append-only target), sftp or s3 (a provider's storage)."""
    host: str
    """The address, or for s3 the name or address the repository's URL gives."""
    port: int

    @property
    def named(self) -> bool:
        """Given by a name (an S3 endpoint's certificate name), not an address."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return True
        return False


def endpoint(config: Mapping[str, Any]) -> tuple[Endpoint | None, list[str]]:
    """The destination of a backup host's repository, and what makes it unclear."""
    target = config.get("target") or {}
    repository = str(config.get("repository") or "")
    if repository.startswith("s3:"):
        url = urlsplit(repository[3:])
        try:
            port = url.port or 443
        except ValueError:
            return None, [f"repository {repository!r}: not a valid port"]
        if url.scheme != "https" or not url.hostname:
            return None, [f"repository {repository!r} is not s3:https://host[:port]/bucket"]
        return Endpoint("s3", url.hostname, port), []
    address = str(target.get("address") or "")
    port = int(target.get("port") or 22)
    # rclone: the agent reaches the target's append-only server over SSH, built from
    # `target` (address, port, account); sftp: ssh reaches `target` too, and the repository
    # names the same account and address.
    if repository == "rclone:" and target.get("user"):
        return Endpoint("target", address, port), []
    if repository.startswith("sftp:") and (
        f"@{address}:" in repository or f"@[{address}]:" in repository
    ):
        return Endpoint("sftp", address, port), []
    return None, [f"repository {repository!r} does not go to target {address!r}"]


def target_destinations(
    config: Mapping[str, Any],
    policies: policy.Policies,
    resolved: Collection[str] = (),
) -> tuple[list[Destination], list[str]]:
    """The egress destinations a backup host's agent settings (backup.json) send to, and
    the problems: not a declared backup_target destination, or outside the allowed
    countries (C1). `resolved`: the addresses the backed-up host finds for an S3
    endpoint given by name (its /etc/hosts pin); each must be a declared destination."""
    found_endpoint, problems = endpoint(config)
    if found_endpoint is None:
        return [], problems
    addresses = [found_endpoint.host]
    if found_endpoint.named:
        if found_endpoint.kind != "s3":
            return [], [f"target {found_endpoint.host!r} is not an IP address"]
        addresses = list(resolved)
        if not addresses:
            return [], [f"{found_endpoint.host} resolves to no address on the host"]
    found: list[Destination] = []
    for address in addresses:
        ip = ipaddress.ip_address(address)
        matching = [
            d
            for d in policies.destinations
            if d.purpose == BACKUP_TARGET
            and d.protocol == "tcp"
            and d.port == found_endpoint.port
            and ip in ipaddress.ip_network(d.address, strict=False)
        ]
        if not matching:
            problems.append(
                f"{address}:{found_endpoint.port} is not a {BACKUP_TARGET} destination of "
                "policies/egress.yml"
            )
        found += [d for d in matching if d not in found]
    for destination in found:
        if destination.country not in policies.countries_allowed:
            problems.append(
                f"{destination.name} is in {destination.country}, not in "
                f"{', '.join(policies.countries_allowed)}"
            )
    return found, problems


def not_on_itself(
    config: Mapping[str, Any], own_addresses: Collection[str], resolved: Collection[str] = ()
) -> list[str]:
    """A backup kept on the host it protects is lost with it."""
    found, _ = endpoint(config)
    # ssh goes to `target` whatever the repository string says.
    addresses = {str((config.get("target") or {}).get("address") or ""), *resolved}
    addresses = {a for a in addresses | ({found.host} if found else set()) if a}
    return [
        f"the repository is on the host itself ({address})"
        for address in sorted(addresses)
        if address in own_addresses or address.startswith("127.") or address in ("::1", "localhost")
    ]


def keep_problems(config: Mapping[str, Any], category: Mapping[str, Any]) -> list[str]:
    """The agent's forget horizons (backup.json keep) against retention.yml's backups
    category (C7)."""
    keep = config.get("keep") or {}
    expected = {f"{k}_days": v for k, v in policy.backup_keep_days(category["keep"]).items()}
    expected["retention_days"] = int(category["retention_days"])
    return [
        f"keep.{name} is {keep.get(name)!r}, the policy says {days}"
        for name, days in expected.items()
        if keep.get(name) != days
    ]


def plaintext_config(head: bytes) -> bool:
    """restic's `config` file is encrypted (IV, ciphertext, MAC); a readable JSON one would
    be an unencrypted repository."""
    # restic's encrypted config (random IV, ciphertext, MAC) starts with "{" once in 256
    # repositories, but it is not UTF-8 text; a cut JSON head is, save a cut last character.
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    try:
        json.loads(text)
    except ValueError:
        return text.lstrip().startswith("{")
    return True


def scan_patterns_command(password_file: str, credentials_file: str, ssh_key: str) -> str:
    """A shell command, run as root on a backup host, printing what the pack scan looks for,
    one pattern a line (`educloud-backup scan` reads them on its stdin: no secret crosses
    the network or a command line): the known plaintext, then the repository password, the
    S3 secret key and the body of the SSH private key (its lines after the format's
    header, as the target's secret search takes them). Every file is read on the host;
    one that does not end with a newline must not run into the next pattern, hence the
    `echo` after each. "" for a file the host does not have."""
    known = " ".join(shlex.quote(text) for text in KNOWN_PLAINTEXT)
    parts = [f"printf '%s\\n' {known}"]
    if password_file:
        parts.append(f"cat {shlex.quote(password_file)}; echo")
    if credentials_file:
        quoted = shlex.quote(credentials_file)
        parts.append(f"sed -n 's/^AWS_SECRET_ACCESS_KEY=//p' {quoted}; echo")
    if ssh_key:
        quoted = shlex.quote(ssh_key)
        parts.append(f"grep -v -- '-----' {quoted} | sed -n '2,$p' | awk 'length($0) >= 16'")
    return "{ " + "; ".join(parts) + "; }"
