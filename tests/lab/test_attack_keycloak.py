"""The master realm attacked as in issue 29 (findings 2 and 5), on the live lab.

Through the admin vhost (https://auth-admin.educloud.test, pinned to edu1, the lab's CA):
40 wrong passwords against a master account, then the right one, get no token (the account
is locked); the temporary bootstrap administrator no longer exists and its password opens
nothing; and no bootstrap password is left on edu1, in the service environment or in
Keycloak's process environment.
"""

from __future__ import annotations

import json
import secrets
import shlex
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from keycloak import KeycloakAdmin
from tests.lab.lab_shell import lab_ssh

from educloud.lab import secrets as lab_secrets
from educloud.lab.keycloak_access import LabKeycloak, admin_client, keycloak_info
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
