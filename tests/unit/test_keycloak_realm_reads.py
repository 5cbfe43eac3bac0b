"""RealmAdmin's reads and writes for retention (educloud.clients.keycloak): the realm's own
settings, one page of its stored events, its users, a user's deletion. Every failure is a
KeycloakAdminError carrying Keycloak's HTTP status when it answered, python-keycloak's own
failures included. No Keycloak: a recorded connection."""

from __future__ import annotations

import pytest
from keycloak.exceptions import KeycloakConnectionError, KeycloakPostError
from tests.unit.keycloak_support import _realm, _response

from educloud.clients.keycloak import KeycloakAdminError


def test_settings_reads_the_realm_itself() -> None:
    realm, connection = _realm(_response(200, {"realm": "lab", "eventsExpiration": 60}))

    assert realm.settings()["eventsExpiration"] == 60
    assert connection.calls == [("GET", "admin/realms/lab", {})]


def test_a_refusal_carries_keycloaks_status_and_names_the_role() -> None:
    realm, _ = _realm(_response(403, {"error": "unknown_error"}))

    with pytest.raises(KeycloakAdminError, match="needs the realm-management role view-realm") as e:
        realm.settings()
    assert e.value.status == 403


def test_an_event_page_is_one_request_and_must_be_a_listing() -> None:
    realm, connection = _realm(_response(200, [{"time": 1}]), _response(200, {"error": "x"}))

    assert realm.event_page("admin-events", dateTo="2026-01-01", max=1) == [{"time": 1}]
    assert connection.calls[0] == (
        "GET",
        "admin/realms/lab/admin-events",
        {"dateTo": "2026-01-01", "max": 1},
    )
    with pytest.raises(KeycloakAdminError, match="answered no listing") as e:
        realm.event_page("events")
    assert e.value.status is None


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        (KeycloakConnectionError("Can't connect to server"), "Keycloak unreachable"),
        (KeycloakPostError("invalid_client", response_code=401), r"renewed \(HTTP 401\)"),
    ],
)
def test_python_keycloaks_own_failures_are_keycloak_admin_errors(
    failure: Exception, said: str
) -> None:
    realm, _ = _realm(failure, failure, failure)

    for read in (
        realm.settings,
        lambda: realm.event_page("events"),
        lambda: list(realm.users("x")),
    ):
        with pytest.raises(KeycloakAdminError, match=said):
            read()


def test_users_are_paged_and_a_deleted_user_is_told_apart() -> None:
    realm, connection = _realm(
        _response(200, [{"id": "1"}]), _response(204), _response(404, {"error": "User not found"})
    )

    assert list(realm.users("list", enabled="false")) == [{"id": "1"}]
    assert connection.calls[0] == (
        "GET",
        "admin/realms/lab/users",
        {"first": 0, "max": 500, "enabled": "false"},
    )
    assert realm.delete_user("1", "erase a") is True
    assert realm.delete_user("2", "erase b") is False
    assert connection.calls[2][:2] == ("DELETE", "admin/realms/lab/users/2")
