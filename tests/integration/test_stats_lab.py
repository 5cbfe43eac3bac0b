"""`educloud stats` (C12) against the lab's live Keycloak: accounts and groups as `educloud
accounts` writes them, real LOGIN events from password logins, storage from the Nextcloud
double. The counts are checked once suppressed, as they are printed.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from tests.doubles.nextcloud_api_double import Account, NextcloudApiDouble
from tests.integration.educloud_cli import run_educloud

from educloud.accounts.keycloak_directory import KeycloakDirectory
from educloud.accounts.model import AccountState, GroupKind, GroupState, Profile, school_group
from educloud.accounts.representations import group_representation, user_representation
from educloud.clients.nextcloud import NextcloudClient
from educloud.stats.aggregate import MASKED, aggregate, small_label
from educloud.stats.usage import login_user_ids, read_usage

pytestmark = pytest.mark.lab

UAI = "0750001U"
THRESHOLD = 3
PASSWORD = "Stats-" + secrets.token_urlsafe(12)


def _account(username: str, profile: Profile, *, enabled: bool = True) -> dict:
    state = AccountState(
        id=username,
        given_name="Test",
        family_name=username,
        email=None,
        profile=profile,
        groups=frozenset({school_group(UAI)}),
        enabled=enabled,
    )
    rep = user_representation(state)
    rep["groups"] = [f"/{school_group(UAI)}"]
    rep["credentials"] = [{"type": "password", "value": PASSWORD, "temporary": False}]
    return rep


def _log_in(lab_keycloak, realm: str, username: str) -> None:
    """A password login (direct grant): Keycloak stores a LOGIN event for it."""
    # Through the admin site: a scratch realm is not on the public name, which serves only
    # the inventory's realms (reverse_proxy allow_paths, issue #29).
    answer = requests.post(
        f"{lab_keycloak.admin_url}/realms/{realm}/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": "try-password",
            "username": username,
            "password": PASSWORD,
        },
        verify=lab_keycloak.ca_file,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


@pytest.fixture
def school(kc_admin, lab_keycloak, scratch_realm) -> dict[str, list[str]]:
    """One school: 12 pupils (5 log in), 4 teachers (all log in), 1 staff, 1 departed pupil."""
    names = {
        "pupils": [f"eleve{n:02d}" for n in range(12)],
        "teachers": [f"prof{n}" for n in range(4)],
        "staff": ["agent0"],
    }
    group = GroupState(school_group(UAI), GroupKind.SCHOOL, UAI, "")
    users = [_account(n, Profile.PUPIL) for n in names["pupils"]]
    users += [_account(n, Profile.TEACHER) for n in names["teachers"]]
    users += [_account(n, Profile.STAFF) for n in names["staff"]]
    users.append(_account("parti", Profile.PUPIL, enabled=False))
    answer = kc_admin.connection.raw_post(
        f"admin/realms/{scratch_realm}/partialImport",
        data=json.dumps(
            {
                "ifResourceExists": "FAIL",
                "groups": [group_representation(group)],
                "users": users,
            }
        ),
    )
    assert answer.status_code == 200, answer.text
    for username in names["pupils"][:5] + names["teachers"]:
        _log_in(lab_keycloak, scratch_realm, username)
    return names


@pytest.fixture
def nextcloud(school) -> Iterator[NextcloudClient]:
    """The double holds files for the pupils who used Nextcloud (1 MB each) and none else."""
    with NextcloudApiDouble() as double:
        for username in school["pupils"][:6]:
            double.accounts[username] = Account("x", username)
            double.put_file(username, "Documents/devoir.odt", b"x" * 1_000_000)
        yield NextcloudClient(double.url, double.admin_user, double.admin_password)


def test_login_events_name_who_logged_in(kc_admin, scratch_realm, school) -> None:
    directory = KeycloakDirectory(kc_admin, scratch_realm)
    today = datetime.now(UTC).date()
    active = login_user_ids(directory, today - timedelta(days=30))
    users = kc_admin.connection.raw_get(f"admin/realms/{scratch_realm}/users").json()
    ids = {user["username"]: user["id"] for user in users}
    assert active == {ids[n] for n in school["pupils"][:5] + school["teachers"]}
    assert login_user_ids(directory, today + timedelta(days=1)) == set()


def test_stats_count_accounts_logins_and_storage_per_profile(
    kc_admin, scratch_realm, school, nextcloud
) -> None:
    directory = KeycloakDirectory(kc_admin, scratch_realm)
    since = datetime.now(UTC).date() - timedelta(days=30)
    usage = read_usage(directory, since=since, storage_of=nextcloud.storage_used)
    result = aggregate(usage, threshold=THRESHOLD, active_days=30, storage_measured=True)

    (stats,) = result.schools
    assert stats.uai == UAI
    rows = {row.profile: row for row in stats.rows}
    assert rows["élèves"].accounts == 12  # the departed pupil is not counted
    assert rows["élèves"].active == 5
    assert rows["élèves"].storage == "6 Mo"
    assert rows["personnels"].accounts == small_label(THRESHOLD)
    assert rows["parents"].accounts == small_label(THRESHOLD)
    # 17 - 12 would give the staff count: the teachers' count is hidden with it.
    assert rows["enseignants"].accounts == MASKED
    assert rows["enseignants"].storage == MASKED
    assert rows["total"].accounts == 17
    assert rows["total"].active == 9
    assert rows["total"].storage == "6 Mo"
    for row in stats.rows:
        for cell in (row.accounts, row.active):
            assert not isinstance(cell, int) or cell >= THRESHOLD


def test_cli_refuses_to_lower_the_policy_threshold() -> None:
    result = run_educloud("stats", "--inventory", "inventories/lab", "--threshold", "5")
    assert result.returncode == 2, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "may only be raised" in message and "Traceback" not in message, message


def test_cli_prints_no_small_count_on_the_lab_realm(kc_admin, lab_keycloak) -> None:
    kc_admin.change_current_realm(lab_keycloak.realm)
    if not kc_admin.get_client_id("educloud-data-rights"):
        pytest.skip("the lab realm has no educloud-data-rights client yet: deploy the lab")
    result = run_educloud("stats", "--inventory", "inventories/lab", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    threshold = document["threshold"]
    assert threshold >= 10
    for school in document["schools"]:
        for row in school["rows"]:
            for cell in (row["accounts"], row["active"]):
                assert cell in (f"< {threshold}", MASKED) or cell >= threshold, cell
            assert row["storage"] == "non mesuré"
