"""Open the deployment's stores for retention from its settings (inventory or file)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date

from keycloak import KeycloakAdmin

from educloud.clients.keycloak import MASTER_REALM, Connection, RealmAdmin, connect_admin
from educloud.netpin import pinned_names
from educloud.portability import export, sources
from educloud.retention.rules import Enforced, Rule, Stores
from educloud.retention.settings import DataRightsSettings, SettingsError
from educloud.retention.stores import (
    ArchiveExporter,
    BackupsCheck,
    KeycloakAccounts,
    KeycloakEventsCheck,
    ProfileOnly,
    delegated_categories,
)


def realm_admins(
    connection: Connection, admin: KeycloakAdmin, tenants: tuple[str, ...]
) -> Callable[[str], RealmAdmin]:
    """Each realm's admin API for the events check. A tenant realm is read through its own
    service client, which the keycloak role creates in every tenant realm with the same id
    and secret (signed in at first use; KeycloakAdminError if it cannot). Any other realm
    (master, where the role creates no service client) is read through `connection`'s
    realm session, and Keycloak says whether it may: a sign-in there would only leave a
    failed client login in master's audit trail at every run."""
    opened = {connection.realm: RealmAdmin(admin, connection.realm)}

    def realm_admin(realm: str) -> RealmAdmin:
        if realm not in opened:
            if realm in tenants:
                opened[realm] = RealmAdmin.connect(replace(connection, realm=realm))
            else:
                opened[realm] = RealmAdmin(admin, realm)
        return opened[realm]

    return realm_admin


@contextmanager
def open_stores(settings: DataRightsSettings) -> Iterator[Stores]:
    with pinned_names(settings.pins):
        stores = Stores(exports_dir=settings.exports_dir, journal_path=settings.journal)
        nextcloud = settings.nextcloud is not None

        backups = settings.backup_hosts is not None

        def on_hosts(rules: dict[str, Rule], today: date) -> Iterable[Enforced]:
            return delegated_categories(rules, nextcloud=nextcloud, backups_checked=backups)

        stores.checks.append(on_hosts)
        if settings.backup_hosts is not None:
            stores.checks.append(BackupsCheck(settings.backup_hosts))
        if settings.keycloak is not None:
            admin = connect_admin(settings.keycloak)
            realm = settings.keycloak.realm
            stores.accounts = KeycloakAccounts(admin, settings.nextcloud, realm=realm)
            # Files, calendars and contacts need the user's own WebDAV session (an app
            # password from occ on the Nextcloud host): without Nextcloud, the profile only.
            # A Nextcloud account is erased only with its files in the export (C8):
            # user_migration or WebDAV as the user, through occ on the Nextcloud host.
            content: export.ContentSource = ProfileOnly()
            if settings.nextcloud is not None:
                if settings.occ is None:
                    raise SettingsError("Nextcloud is configured without occ: cannot export files")
                content = sources.nextcloud_content(
                    settings.occ, settings.nextcloud.base_url, verify=settings.nextcloud_verify
                )
            stores.exporter = ArchiveExporter(
                export.ExportSources(export.KeycloakProfiles(admin, realm), content)
            )
            # Login and admin events: every realm of the deployment, and master (C7).
            tenants = tuple(dict.fromkeys((realm, *settings.realms)))
            realms = tuple(dict.fromkeys((*tenants, MASTER_REALM)))
            stores.checks.append(
                KeycloakEventsCheck(realms, realm_admins(settings.keycloak, admin, tenants))
            )
        if settings.reports is not None:
            from educloud.reporting.moderation import ModerationClient

            stores.reports = ModerationClient(
                settings.reports.url, settings.reports.token, verify=settings.reports.verify
            )
        yield stores
