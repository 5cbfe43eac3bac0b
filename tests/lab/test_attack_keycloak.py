"""The master realm attacked as in issue 29 (findings 2, 5 and 10), on the live lab.

Through the admin vhost (https://auth-admin.educloud.test, pinned to edu1, the lab's CA):
40 wrong passwords against a master account, then the right one, get no token (the account
is locked); the temporary bootstrap administrator no longer exists and its password opens
nothing; and no bootstrap password is left on edu1, in the service environment or in
Keycloak's process environment. An application's offline token (finding 10) dies after
the idle period of policies/retention.yml, and every realm bounds offline sessions.
"""

from __future__ import annotations

import base64
import json
import secrets
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
import requests
from keycloak import KeycloakAdmin
from tests.lab.lab_shell import lab_ssh

from educloud import policy
from educloud.lab import secrets as lab_secrets
from educloud.lab.keycloak_access import (
    LabKeycloak,
    admin_client,
    disposable_user,
    keycloak_info,
)
from educloud.lab.settings import LabPaths
from educloud.netpin import pinned_names
from educloud.paths import inventories_dir

pytestmark = pytest.mark.lab
HOST = "edu1"
MASTER = "master"
GUESSES = 40
BOOTSTRAP_USER = "admin"  # keycloak_admin_user: the role's default, the lab keeps it


@pytest.fixture(scope="module")
def lab_keycloak() -> Iterator[LabKeycloak]:
    info = keycloak_info(inventories_dir() / "lab", LabPaths.default().root / "ca.crt")
    with pinned_names(info.pinned):
        yield info


@pytest.fixture(scope="module")
def kc_admin(lab_keycloak: LabKeycloak) -> KeycloakAdmin:
    return admin_client(lab_keycloak)


def _token(lab_keycloak: LabKeycloak, username: str, password: str) -> requests.Response:
    """A password grant on master's admin-cli, as the admin console's scripts do."""
    return requests.post(
        f"{lab_keycloak.admin_url}/realms/{MASTER}/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": "admin-cli",
            "username": username,
            "password": password,
        },
        verify=lab_keycloak.ca_file,
        timeout=15,
    )


def _issued(answer: requests.Response) -> bool:
    try:
        return bool(answer.json().get("access_token"))
    except ValueError:
        return False


@dataclass(frozen=True)
class _MasterAccount:
    id: str
    username: str
    password: str


@pytest.fixture
def master_account(kc_admin: KeycloakAdmin) -> Iterator[_MasterAccount]:
    """A master account with a strong password and no OTP (what password guessing targets
    once an administrator's OTP is set aside); deleted afterwards, its lockout with it."""
    username = f"attack-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(24) + "aA1!"
    answer = kc_admin.connection.raw_post(
        f"admin/realms/{MASTER}/users",
        data=json.dumps(
            {
                "username": username,
                "enabled": True,
                "credentials": [{"type": "password", "value": password, "temporary": False}],
            }
        ),
    )
    assert answer.status_code == 201, f"Keycloak refused the account: {answer.status_code}"
    user_id = answer.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    try:
        yield _MasterAccount(user_id, username, password)
    finally:
        kc_admin.connection.raw_delete(f"admin/realms/{MASTER}/users/{user_id}")


def test_forty_wrong_passwords_lock_a_master_account(
    lab_keycloak: LabKeycloak, kc_admin: KeycloakAdmin, master_account: _MasterAccount
) -> None:
    # Control: the right password opens a session before the guessing.
    assert _issued(_token(lab_keycloak, master_account.username, master_account.password)), (
        "control failed: the right password got no token before any wrong one"
    )
    for attempt in range(GUESSES):
        wrong = _token(
            lab_keycloak, master_account.username, f"guess-{attempt}-{secrets.token_hex(4)}"
        )
        assert not _issued(wrong)
    answer = _token(lab_keycloak, master_account.username, master_account.password)
    status = kc_admin.connection.raw_get(
        f"admin/realms/{MASTER}/attack-detection/brute-force/users/{master_account.id}"
    ).json()
    assert not _issued(answer), (
        f"after {GUESSES} wrong passwords the right one got a token: master has no lockout "
        f"(brute-force status {status})"
    )
    assert status.get("disabled") is True, f"the account is not locked: {status}"


def test_no_temporary_administrator_in_master(
    lab_keycloak: LabKeycloak, kc_admin: KeycloakAdmin
) -> None:
    flagged = kc_admin.connection.raw_get(
        f"admin/realms/{MASTER}/users", q="is_temporary_admin:true", briefRepresentation="true"
    ).json()
    named = kc_admin.connection.raw_get(
        f"admin/realms/{MASTER}/users", exact="true", username=BOOTSTRAP_USER
    ).json()
    assert [u["username"] for u in flagged] == [], "master still has a temporary administrator"
    assert [u["username"] for u in named] == [], f"master still has a user {BOOTSTRAP_USER}"


def test_bootstrap_password_opens_nothing(lab_keycloak: LabKeycloak) -> None:
    password = lab_secrets.read(LabPaths.default())["vault_keycloak_admin_password"]
    answer = _token(lab_keycloak, BOOTSTRAP_USER, password)
    issued = _issued(answer)
    assert not issued, f"{BOOTSTRAP_USER} with the bootstrap password got a token"


@pytest.mark.parametrize(
    "place",
    ["/etc/keycloak/keycloak.env", "/proc/$(systemctl show -p MainPID --value keycloak)/environ"],
)
def test_no_bootstrap_password_left_on_the_host(place: str) -> None:
    """Neither the bootstrap settings nor the password's value, in the service environment
    file or in the running process's environment (read as root on edu1; never printed)."""
    password = lab_secrets.read(LabPaths.default())["vault_keycloak_admin_password"]
    content = lab_ssh(HOST, f"tr '\\0' '\\n' < {place}")
    settings = sorted(
        {line.split("=", 1)[0] for line in content.splitlines() if "KC_BOOTSTRAP_ADMIN" in line}
    )
    holds_password = password in content
    assert settings == [], f"{HOST}:{place} sets {', '.join(settings)}"
    assert not holds_password, f"{HOST}:{place} holds the bootstrap password"


def test_the_place_read_is_keycloaks() -> None:
    """The environment read above is Keycloak's own (a running java process of the
    keycloak user), so an empty answer is not a wrong pid."""
    pid = lab_ssh(HOST, "systemctl show -p MainPID --value keycloak").strip()
    assert pid not in ("", "0"), "Keycloak is not running on edu1"
    owner = lab_ssh(HOST, f"stat -c %U /proc/{shlex.quote(pid)}").strip()
    assert owner == "keycloak"


# --- Finding 10: offline sessions that never end (C7) ---------------------------------------
DAY = 86400
SLACK = 120  # seconds: clock reads between Keycloak and this test


def _tenant_token(lab_keycloak: LabKeycloak, form: dict[str, str]) -> requests.Response:
    """The tenant realm's token endpoint on the public name, as an application calls it."""
    realm = lab_keycloak.realm
    return requests.post(
        f"{lab_keycloak.public_url}/realms/{realm}/protocol/openid-connect/token",
        data=form,
        verify=lab_keycloak.ca_file,
        timeout=15,
    )


def _claims(jwt: str) -> dict[str, Any]:
    """A token's payload (its signature is Keycloak's concern, not this test's)."""
    payload = jwt.split(".")[1]
    return cast(
        "dict[str, Any]", json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    )


@pytest.fixture
def offline_grant(lab_keycloak: LabKeycloak, kc_admin: KeycloakAdmin) -> Iterator[dict[str, Any]]:
    """What an application holding offline_access gets: a pupil's offline token, through a
    throw-away public client of the tenant realm (password grant), removed afterwards."""
    client_id = f"attack-offline-{secrets.token_hex(4)}"
    client_uuid = kc_admin.create_client(
        {"clientId": client_id, "publicClient": True, "directAccessGrantsEnabled": True,
         "standardFlowEnabled": False, "optionalClientScopes": ["offline_access"]}
    )  # fmt: skip
    try:
        with disposable_user(kc_admin, prefix="attack-offline") as user:
            answer = _tenant_token(
                lab_keycloak,
                {"grant_type": "password", "client_id": client_id,
                 "scope": "openid offline_access",
                 "username": user.username, "password": user.password},
            )  # fmt: skip
            assert answer.status_code == 200, (
                f"no offline token: {answer.status_code} {answer.text}"
            )
            yield {"client_id": client_id, "token": answer.json(), "user": user}
    finally:
        kc_admin.delete_client(client_uuid)


def test_an_offline_token_expires_as_the_policy_says(offline_grant: dict[str, Any]) -> None:
    """An offline token unused for the policy's idle period is dead. (Without a maximum
    lifespan, Keycloak issues offline tokens with no expiry at all: seen on the lab.) That a
    token refreshed in time still ends at the policy's maximum cannot be watched within a
    test's minutes: the realm settings below, and the charter check of every client's
    override (tests/charter/test_keycloak.py), carry it."""
    rule = policy.load().retention["offline_sessions"]
    issued = _claims(offline_grant["token"]["refresh_token"])
    assert issued["typ"] == "Offline", issued["typ"]
    assert issued.get("exp"), "the offline token has no expiry"
    assert issued["exp"] - issued["iat"] <= rule["idle_days"] * DAY + SLACK, (
        f"an unused offline token lives {(issued['exp'] - issued['iat']) / DAY:.1f} days, "
        f"the policy says {rule['idle_days']}"
    )


@pytest.mark.parametrize("realm", [MASTER, "tenant"])
def test_every_realm_bounds_offline_sessions(
    lab_keycloak: LabKeycloak, kc_admin: KeycloakAdmin, realm: str
) -> None:
    rule = policy.load().retention["offline_sessions"]
    name = lab_keycloak.realm if realm == "tenant" else realm
    settings = kc_admin.connection.raw_get(f"admin/realms/{name}").json()
    assert settings["offlineSessionMaxLifespanEnabled"] is True, (
        f"{name}: offline sessions never end"
    )
    assert settings["offlineSessionMaxLifespan"] == rule["retention_days"] * DAY, name
    assert settings["offlineSessionIdleTimeout"] == rule["idle_days"] * DAY, name
