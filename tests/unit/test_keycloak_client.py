"""Keycloak's admin client (educloud.clients.keycloak) and a deployment's connection to it
(educloud.deployment.keycloak): every failure one line saying what to check, the secret
never in it, the names pinned while the client runs. No Keycloak: a recorded connection."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import requests
from tests.unit.keycloak_support import _realm, _response

from educloud.accounts.keycloak_directory import KeycloakDirectory
from educloud.clients.keycloak import Connection, KeycloakAdminError
from educloud.deployment import keycloak
from educloud.deployment.inventory import InventoryHost
from educloud.deployment.model import Deployment, Site
from educloud.errors import EducloudError

SECRET = "client-secret-never-printed"  # noqa: S105 (a test value)


# -- the admin calls -----------------------------------------------------------------------


def test_a_call_goes_to_the_realms_admin_path_and_returns_its_json() -> None:
    realm, connection = _realm(_response(200, [{"id": "1"}]), _response(204))

    assert realm.call("list users", "GET", "users", max=5) == [{"id": "1"}]
    assert realm.call("update", "PUT", "users/1", {"enabled": False}) is None
    assert connection.calls[0] == ("GET", "admin/realms/lab/users", {"max": 5})
    assert connection.calls[1][:2] == ("PUT", "admin/realms/lab/users/1")
    assert json.loads(connection.calls[1][2]["data"]) == {"enabled": False}


def test_a_refusal_says_what_the_service_account_needs() -> None:
    realm, _ = _realm(_response(403, {"error": "forbidden"}), _response(403))

    with pytest.raises(KeycloakAdminError, match=r"list users: HTTP 403 \(the service account "):
        realm.call("list users", "GET", "users")
    with pytest.raises(KeycloakAdminError, match="needs view-events"):
        realm.call("read events", "GET", "events", needs="view-events")


def test_a_server_error_is_one_line_with_the_start_of_the_answer() -> None:
    realm, _ = _realm(_response(500, raw=b"boom" * 100))

    with pytest.raises(KeycloakAdminError) as caught:
        realm.call("count users", "GET", "users/count")
    assert str(caught.value).startswith("count users: HTTP 500: boom")
    assert len(str(caught.value)) < 240 and "\n" not in str(caught.value)


def test_an_answer_that_is_not_json_asks_whether_the_url_is_keycloaks() -> None:
    realm, _ = _realm(_response(200, raw=b"<html>a proxy page</html>"))

    with pytest.raises(KeycloakAdminError, match="Keycloak's admin URL"):
        realm.call("list users", "GET", "users")


def test_unreachable_keycloak_says_what_to_do_for_each_client() -> None:
    down = requests.exceptions.ConnectionError("refused")
    realm, _ = _realm(down)
    directory, _ = _realm(down, cls=KeycloakDirectory)

    with pytest.raises(KeycloakAdminError, match="run the command again"):
        realm.call("list users", "GET", "users")
    with pytest.raises(KeycloakAdminError, match=r"run apply again .* resumes"):
        directory.call("list users", "GET", "users")


def test_raw_returns_the_response_itself() -> None:
    created = _response(201)
    created.headers["Location"] = "https://auth/admin/realms/lab/users/abc"
    realm, _ = _realm(created)

    assert realm.call("create", "POST", "users", {"username": "x"}, raw=True) is created


def test_paged_reads_until_a_short_page() -> None:
    realm, connection = _realm(
        _response(200, [{"n": 1}, {"n": 2}]),
        _response(200, [{"n": 3}, {"n": 4}]),
        _response(200, []),
    )

    assert [item["n"] for item in realm.paged("list", "groups", size=2)] == [1, 2, 3, 4]
    assert [call[2]["first"] for call in connection.calls] == [0, 2, 4]


def test_events_are_paged_and_a_refusal_names_view_events() -> None:
    realm, connection = _realm(_response(200, [{"userId": "u1"}]), _response(403))

    events = list(realm.events("read login events", type="LOGIN", dateFrom="2026-01-01"))
    assert events == [{"userId": "u1"}]
    assert connection.calls[0][1] == "admin/realms/lab/events"
    assert connection.calls[0][2]["type"] == "LOGIN"
    with pytest.raises(KeycloakAdminError, match="view-events"):
        list(realm.events("read login events", type="LOGIN"))


def test_login_user_ids_reads_the_realms_login_events() -> None:
    from datetime import date

    from educloud.stats.usage import login_user_ids

    realm, connection = _realm(_response(200, [{"userId": "a"}, {"userId": "b"}, {"type": "X"}]))

    assert login_user_ids(realm, date(2026, 3, 1)) == {"a", "b"}
    assert connection.calls[0][2]["dateFrom"] == "2026-03-01"


# -- a deployment's connection -------------------------------------------------------------


def _deployment(tmp_path: Path, *, clients: list[dict[str, Any]] | None = None) -> Deployment:
    keycloak_host = InventoryHost(
        "kc1",
        ("keycloak",),
        {"ansible_host": "198.18.0.11", "keycloak_service_clients": clients or []},
    )
    return Deployment(
        inventory=tmp_path / "inv",
        hosts=(keycloak_host,),
        sites=(Site("auth-admin.example.test", "198.18.0.10", public=False),),
        keycloak_url="https://auth.example.test",
        keycloak_admin_url="https://auth-admin.example.test",
        realms=("academie", "autre"),
        privacy_path="/confidentialite",
    )


@pytest.fixture
def no_secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for client in (keycloak.ACCOUNTS, keycloak.DATA_RIGHTS):
        monkeypatch.delenv(client.secret_env, raising=False)
        monkeypatch.delenv(f"{client.secret_env}_FILE", raising=False)


def test_target_takes_the_first_realm_and_the_secret_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_secret_env: None
) -> None:
    monkeypatch.setenv(keycloak.DATA_RIGHTS.secret_env, SECRET)

    found = keycloak.target(_deployment(tmp_path), client=keycloak.DATA_RIGHTS)

    assert found.connection.server_url == "https://auth-admin.example.test"
    assert found.connection.realm == "academie"
    assert found.connection.client_id == "educloud-data-rights"
    assert found.connection.client_secret == SECRET
    assert found.connection.verify is True
    assert found.login_url == "https://auth.example.test/realms/academie/account"
    assert found.pins == {"auth-admin.example.test": "198.18.0.10"}
    assert SECRET not in repr(found)


def test_target_reads_the_secret_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_secret_env: None
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    monkeypatch.setenv(f"{keycloak.ACCOUNTS.secret_env}_FILE", str(secret_file))

    found = keycloak.target(_deployment(tmp_path), realm="autre")

    assert found.connection.client_secret == SECRET
    assert found.connection.realm == "autre"


def test_target_templates_the_inventorys_secret_when_the_environment_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_secret_env: None
) -> None:
    asked: list[tuple[str, str]] = []

    def template(inventory: Path, host: str, expression: str) -> str:
        asked.append((host, expression))
        return SECRET

    monkeypatch.setattr(keycloak.ansible, "template", template)
    clients = [
        {"client_id": "educloud-accounts", "secret": "{{ vault_accounts }}"},
        {"client_id": "educloud-accounts-bulk", "secret": "{{ vault_bulk }}"},
    ]

    found = keycloak.target(_deployment(tmp_path, clients=clients), client=keycloak.ACCOUNTS_BULK)

    assert found.connection.client_secret == SECRET
    assert asked == [("kc1", "keycloak_service_clients[1].secret")]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"realm": "nowhere"}, "realm 'nowhere' is not one of academie, autre"),
        ({"ca_file": "/nonexistent/ca.pem"}, "CA file /nonexistent/ca.pem not found"),
        ({}, "secret is missing: set EDUCLOUD_ACCOUNTS_CLIENT_SECRET or"),
    ],
)
def test_target_refuses_bad_input_with_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_secret_env: None,
    change: dict[str, Any],
    message: str,
) -> None:
    if change:
        monkeypatch.setenv(keycloak.ACCOUNTS.secret_env, SECRET)
    with pytest.raises(EducloudError, match=message) as caught:
        keycloak.target(_deployment(tmp_path), **change)
    assert SECRET not in str(caught.value)


def test_target_refuses_an_unreadable_secret_file_and_a_deployment_without_keycloak(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_secret_env: None
) -> None:
    monkeypatch.setenv(f"{keycloak.ACCOUNTS.secret_env}_FILE", str(tmp_path / "missing"))
    with pytest.raises(EducloudError, match="_FILE: cannot read"):
        keycloak.target(_deployment(tmp_path))

    monkeypatch.setenv(keycloak.ACCOUNTS.secret_env, SECRET)
    bare = _deployment(tmp_path)
    without = Deployment(**{**bare.__dict__, "keycloak_admin_url": "", "realms": ()})
    with pytest.raises(EducloudError, match="no host in the keycloak group"):
        keycloak.target(without)
    no_realms = Deployment(**{**bare.__dict__, "realms": ()})
    with pytest.raises(EducloudError, match="declares no keycloak_realms"):
        keycloak.target(no_realms)


def test_target_trusts_the_given_ca_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_secret_env: None
) -> None:
    monkeypatch.setenv(keycloak.ACCOUNTS.secret_env, SECRET)
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")

    assert keycloak.target(_deployment(tmp_path), ca_file=str(ca)).connection.verify == str(ca)


def test_connect_opens_the_client_with_the_names_pinned_and_unpins_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_secret_env: None
) -> None:
    monkeypatch.setenv(keycloak.DATA_RIGHTS.secret_env, SECRET)
    seen: list[str] = []
    original = socket.getaddrinfo

    def opener(connection: Connection) -> str:
        address = socket.getaddrinfo("auth-admin.example.test", 443)[0][4][0]
        seen.append(str(address))
        return f"client of {connection.realm}"

    with keycloak.connect(_deployment(tmp_path), opener, client=keycloak.DATA_RIGHTS) as (
        client,
        found,
    ):
        assert client == "client of academie"
        assert found.connection.client_id == "educloud-data-rights"
    assert seen == ["198.18.0.10"]
    assert socket.getaddrinfo is original
