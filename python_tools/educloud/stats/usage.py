"""Read each account's usage for the statistics (C12): school, profile, last logins, storage.

The per-account records this module returns go straight into `stats.aggregate`, which
prints only suppressed aggregates; nothing here prints or stores them.

Accounts come from the realm as `educloud accounts` manages them (KeycloakDirectory:
profile attribute, school group `etab-<uai>`, enabled). Activity comes from Keycloak's
stored LOGIN events (the realm stores them for the retention of login_events), read with
the admin API: GET /admin/realms/{realm}/events?type=LOGIN&dateFrom=... (the service
account needs realm-management view-events and view-users). Storage is Nextcloud's
`quota.used` for the user of the same name (user_oidc maps preferred_username to the
Nextcloud user id, roles/nextcloud nextcloud_oidc_uid_claim).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date

from educloud.accounts.keycloak_directory import KeycloakDirectory
from educloud.clients.keycloak import RealmAdmin
from educloud.stats.aggregate import AccountUsage

STORAGE_WORKERS = 8

StorageOf = Callable[[str], int | None]
"""Bytes used by the Nextcloud user of that name, or None when it has none."""


def login_user_ids(realm: RealmAdmin, since: date) -> set[str]:
    """Keycloak ids of the users with a stored LOGIN event on `since` or later."""
    return {
        str(event["userId"])
        for event in realm.events("read login events", type="LOGIN", dateFrom=since.isoformat())
        if event.get("userId")
    }


def read_usage(
    directory: KeycloakDirectory, *, since: date, storage_of: StorageOf | None = None
) -> list[AccountUsage]:
    """One record per enabled managed account (departed accounts are disabled: not counted)."""
    state = directory.read_state()
    active_ids = login_user_ids(directory, since)
    accounts = [a for a in state.accounts.values() if a.enabled]
    storage: dict[str, int | None] = {}
    if storage_of is not None:
        with ThreadPoolExecutor(max_workers=STORAGE_WORKERS) as pool:
            names = [a.id for a in accounts]
            storage = dict(zip(names, pool.map(storage_of, names), strict=True))
    return [
        AccountUsage(
            uai=account.uai,
            profile=account.profile,
            active=directory.keycloak_id(account.id) in active_ids,
            storage_bytes=storage.get(account.id),
        )
        for account in accounts
    ]
