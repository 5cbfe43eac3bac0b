"""`educloud stats` end to end (C12): the deployment's statistics policy, its realm's managed
accounts and logins, Nextcloud's storage, aggregated with small counts suppressed.

The per-account records live only inside `statistics`; what it returns is the aggregate.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from educloud import policy
from educloud.accounts.keycloak_directory import KeycloakDirectory
from educloud.deployment import keycloak
from educloud.deployment import model as deployment
from educloud.errors import EducloudError
from educloud.stats.aggregate import Statistics, aggregate
from educloud.stats.usage import StorageOf, read_usage


def threshold_for(rules: policy.StatisticsPolicy, requested: int | None) -> int:
    """The small-count threshold: the policy's, or a higher one asked for. Never a lower
    one, which would print counts the policy suppresses."""
    chosen = rules.small_count_threshold
    if requested is None:
        return chosen
    if requested < chosen:
        raise EducloudError(
            f"--threshold {requested} is under the policy's {chosen} "
            "(policies/statistics.yml): it may only be raised"
        )
    return requested


def active_since(rules: policy.StatisticsPolicy, now: datetime) -> date:
    """The first day a login makes an account active: the policy's window back from `now`."""
    return (now - timedelta(days=rules.active_days)).date()


def statistics(
    inventory: Path,
    *,
    realm: str | None = None,
    nextcloud_url: str | None = None,
    threshold: int | None = None,
    now: datetime | None = None,
) -> Statistics:
    """The statistics of the deployment's realm (default: its first), through the
    data-rights service client; storage when Nextcloud's URL is given (its admin account
    from the environment, educloud.clients.nextcloud.client_from_env)."""
    from educloud.clients.nextcloud import client_from_env

    found = deployment.load(inventory)
    rules = policy.load_statistics(found.policies_dir)
    chosen = threshold_for(rules, threshold)
    since = active_since(rules, now or datetime.now(UTC))
    storage_of: StorageOf | None = None
    with keycloak.connect(
        found, KeycloakDirectory.connect, realm=realm, client=keycloak.DATA_RIGHTS
    ) as (directory, _target):
        if nextcloud_url:
            storage_of = client_from_env(nextcloud_url).storage_used
        records = read_usage(directory, since=since, storage_of=storage_of)
    return aggregate(
        records,
        threshold=chosen,
        active_days=rules.active_days,
        storage_measured=storage_of is not None,
    )
