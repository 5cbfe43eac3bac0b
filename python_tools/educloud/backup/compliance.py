"""What the charter checks (tests/charter/test_backup.py) judge about backups, as pure
functions of what they read on the hosts: where a backup host sends its repository (C1),
how long its snapshots live (C7), whether the target sees anything but ciphertext (C10)."""

from __future__ import annotations

import codecs
import ipaddress
import json
from collections.abc import Collection, Mapping
from typing import Any

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


def target_destinations(
    config: Mapping[str, Any], policies: policy.Policies
) -> tuple[list[Destination], list[str]]:
    """The egress destinations a backup host's agent settings (backup.json) send to, and
    the problems: not a declared backup_target destination, or outside the allowed
    countries (C1)."""
    target = config.get("target") or {}
    address = str(target.get("address") or "")
    port = target.get("port", 22)
    repository = str(config.get("repository") or "")
    problems = []
    # rclone: the agent reaches the target's append-only server over SSH, built from
    # `target` (address, port, account); sftp: the address is in the repository itself.
    over_rclone = repository == "rclone:" and bool(target.get("user"))
    over_sftp = repository.startswith("sftp:") and f"@{address}:" in repository
    if not (over_rclone or over_sftp):
        problems.append(f"repository {repository!r} does not go to target {address!r}")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return [], [*problems, f"target {address!r} is not an IP address"]
    found = [
        d
        for d in policies.destinations
        if d.purpose == BACKUP_TARGET
        and d.protocol == "tcp"
        and d.port == port
        and ip in ipaddress.ip_network(d.address, strict=False)
    ]
    if not found:
        problems.append(
            f"{address}:{port} is not a {BACKUP_TARGET} destination of policies/egress.yml"
        )
    for destination in found:
        if destination.country not in policies.countries_allowed:
            problems.append(
                f"{destination.name} is in {destination.country}, not in "
                f"{', '.join(policies.countries_allowed)}"
            )
    return found, problems


def not_on_itself(config: Mapping[str, Any], own_addresses: Collection[str]) -> list[str]:
    """A backup kept on the host it protects is lost with it."""
    address = str((config.get("target") or {}).get("address") or "")
    if address in own_addresses or address.startswith("127.") or address == "::1":
        return [f"the repository is on the host itself ({address})"]
    return []


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
