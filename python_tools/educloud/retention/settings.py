"""Where the data-rights commands work: from a deployment's inventory (an operator's
machine, the lab) or from a settings file (the retention timer on a server).

The settings file (written by the retention role, /etc/educloud/retention.yml):

    policies_dir: /etc/educloud/policies
    exports_dir: /var/lib/educloud/exports
    journal: /var/lib/educloud/retention/journal.jsonl
    keycloak: {url, realm, client_id, client_secret_file, ca_file}
    nextcloud: {url, admin_user, admin_password_file, ca_file,      # optional
                install_dir, system_user}      # occ runs here, as system_user
    reports: {url, token_file, ca_file}                              # optional

Secrets are read from files (0600) or the environment, never from the command line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from educloud.backup.remote import inventory_readers
from educloud.backup.status import StatusReader, local_readers
from educloud.clients.keycloak import Connection
from educloud.clients.nextcloud import NextcloudClient
from educloud.clients.nextcloud.occ import LocalOcc, OccRunner, SshOcc
from educloud.deployment.keycloak import DATA_RIGHTS
from educloud.errors import EducloudError

CLIENT_ID = DATA_RIGHTS.client_id
DEFAULT_EXPORTS = Path("/var/lib/educloud/exports")
DEFAULT_JOURNAL = Path("/var/lib/educloud/retention/journal.jsonl")


class SettingsError(EducloudError):
    """The settings file is missing, unreadable or incomplete."""


@dataclass(frozen=True)
class ReportsSettings:
    url: str
    token: str = field(repr=False)
    verify: bool | str = True


@dataclass(frozen=True)
class DataRightsSettings:
    policies_dir: Path
    exports_dir: Path
    journal: Path
    keycloak: Connection | None = None
    # The deployment's tenant realms: the events check reads each of them and master (empty:
    # the connection's realm). The service client signs in to each with the same secret.
    realms: tuple[str, ...] = ()
    pins: dict[str, str] = field(default_factory=dict)
    nextcloud: NextcloudClient | None = None  # an admin account
    # occ on the Nextcloud host: users' app passwords (WebDAV) or user_migration exports.
    occ: OccRunner | None = None
    nextcloud_verify: bool | str = True
    reports: ReportsSettings | None = None
    # The backup hosts whose status file the backups category reads (None: not checked).
    backup_hosts: Callable[[], list[tuple[str, StatusReader]]] | None = None


def _secret_file(value: Any, where: str) -> str:
    if not value:
        raise SettingsError(f"{where} is missing")
    try:
        secret = Path(str(value)).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SettingsError(f"{where}: cannot read {value}: {exc.strerror}") from None
    if not secret:
        raise SettingsError(f"{where}: {value} is empty")
    return secret


def _verify(section: dict[str, Any]) -> bool | str:
    ca = section.get("ca_file")
    return str(ca) if ca else True


def _section(data: dict[str, Any], name: str, keys: tuple[str, ...]) -> dict[str, Any] | None:
    section = data.get(name)
    if section is None:
        return None
    if not isinstance(section, dict):
        raise SettingsError(f"{name}: must be a mapping with {', '.join(keys)}")
    missing = [key for key in keys if not section.get(key)]
    if missing:
        raise SettingsError(f"{name}: missing {', '.join(missing)}")
    return section


def from_file(path: Path) -> DataRightsSettings:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: must be a mapping")
    nextcloud = _section(data, "nextcloud", ("url", "admin_password_file"))
    return DataRightsSettings(
        policies_dir=Path(data.get("policies_dir") or "/etc/educloud/policies"),
        exports_dir=Path(data.get("exports_dir") or DEFAULT_EXPORTS),
        journal=Path(data.get("journal") or DEFAULT_JOURNAL),
        keycloak=_keycloak(_section(data, "keycloak", ("url", "realm", "client_secret_file"))),
        nextcloud=_nextcloud(nextcloud),
        occ=_local_occ(nextcloud),
        nextcloud_verify=_verify(nextcloud or {}),
        reports=_reports(_section(data, "reports", ("url", "token_file"))),
        # On a backup host, its own status file (none elsewhere).
        backup_hosts=local_readers,
    )


def _keycloak(section: dict[str, Any] | None) -> Connection | None:
    if section is None:
        return None
    return Connection(
        server_url=str(section["url"]).rstrip("/"),
        realm=str(section["realm"]),
        client_id=str(section.get("client_id") or CLIENT_ID),
        client_secret=_secret_file(section["client_secret_file"], "keycloak.client_secret_file"),
        verify=_verify(section),
    )


def _nextcloud(section: dict[str, Any] | None) -> NextcloudClient | None:
    if section is None:
        return None
    return NextcloudClient(
        str(section["url"]),
        str(section.get("admin_user") or "admin"),
        _secret_file(section["admin_password_file"], "nextcloud.admin_password_file"),
        verify=_verify(section),
    )


def _local_occ(section: dict[str, Any] | None) -> OccRunner | None:
    if section is None:
        return None
    return LocalOcc(
        install_dir=str(section.get("install_dir") or "/var/www/nextcloud"),
        system_user=str(section.get("system_user") or "nextcloud"),
    )


def _reports(section: dict[str, Any] | None) -> ReportsSettings | None:
    if section is None:
        return None
    return ReportsSettings(
        str(section["url"]).rstrip("/"),
        _secret_file(section["token_file"], "reports.token_file"),
        _verify(section),
    )


def from_inventory(
    inventory: Path,
    *,
    exports_dir: Path,
    journal: Path,
    realm: str | None = None,
    nextcloud_url: str | None = None,
) -> DataRightsSettings:
    from educloud import paths
    from educloud.clients.nextcloud import CA_ENV, client_from_env
    from educloud.deployment import keycloak
    from educloud.deployment import model as deployment

    declared = deployment.load(inventory)
    found = keycloak.target(declared, realm=realm, client=DATA_RIGHTS)
    return DataRightsSettings(
        policies_dir=paths.policies_dir(),
        exports_dir=exports_dir,
        journal=journal,
        keycloak=found.connection,
        realms=declared.realms,
        pins=found.pins,
        nextcloud=client_from_env(nextcloud_url) if nextcloud_url else None,
        occ=SshOcc.from_inventory(inventory)[0] if nextcloud_url else None,
        nextcloud_verify=os.environ.get(CA_ENV) or True,
        backup_hosts=partial(inventory_readers, inventory),
    )


def resolve(
    *,
    config: Path | None,
    inventory: Path,
    exports_dir: Path | None = None,
    journal: Path | None = None,
    realm: str | None = None,
    nextcloud_url: str | None = None,
) -> DataRightsSettings:
    """A command's settings: from the settings file when one is given (the retention timer
    on a server), with the export directory and journal given here in place of its own;
    else from the inventory (an operator's machine), with the default directories for
    those not given. The realm and Nextcloud's URL only apply to an inventory."""
    if config is not None:
        found = from_file(config)
        return replace(
            found,
            exports_dir=exports_dir or found.exports_dir,
            journal=journal or found.journal,
        )
    return from_inventory(
        inventory,
        exports_dir=exports_dir or DEFAULT_EXPORTS,
        journal=journal or DEFAULT_JOURNAL,
        realm=realm,
        nextcloud_url=nextcloud_url,
    )


def journal_path(journal: Path | None, config: Path | None) -> Path:
    """The journal to read: the one given, else the settings file's, else the default."""
    if journal is not None:
        return journal
    return from_file(config).journal if config is not None else DEFAULT_JOURNAL
