"""Retention's Keycloak events check never reads "none older found" into a listing it could
not read (C7): a refused, unreachable or non-JSON answer leaves the category unproven. It
checks every realm of the deployment, master included.

Keycloak here is python-keycloak's connection as RealmAdmin uses it (raw_get returning a
requests.Response, or raising); the real Keycloak is exercised by
tests/integration/test_retention_lab.py.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from keycloak.exceptions import KeycloakConnectionError

from educloud.clients.keycloak import Connection, KeycloakAdminError, RealmAdmin
from educloud.retention import connect
from educloud.retention.rules import Rule
from educloud.retention.settings import DataRightsSettings
from educloud.retention.stores import KeycloakEventsCheck

DAYS = 180
RULES = {
    name: Rule(name, DAYS, "record", "erase", "keycloak")
    for name in ("login_events", "admin_events")
}
REALM = {
    "eventsExpiration": DAYS * 86400,
    "attributes": {"adminEventsExpiration": str(DAYS * 86400)},
}
TODAY = date(2026, 12, 6)


def _response(status: int, body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    return response


def _json(body: Any) -> requests.Response:
    return _response(200, json.dumps(body).encode())


class _Connection:
    """Keycloak's admin API by path: each realm's settings, its events (none unless told)."""

    server_url = "https://auth-admin.example.test"

    def __init__(self, answers: dict[str, requests.Response | Exception]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, dict[str, Any]]] = []

    def raw_get(self, path: str, **params: Any) -> requests.Response:
        self.asked.append((path, params))
        answer = self.answers.get(path)
        if answer is None:
            realm = path.removeprefix("admin/realms/").split("/")[0]
            answer = _json(REALM) if path == f"admin/realms/{realm}" else _json([])
        if isinstance(answer, Exception):
            raise answer
        return answer


def _check(
    answers: dict[str, requests.Response | Exception], realms: tuple[str, ...] = ("lab",)
) -> tuple[KeycloakEventsCheck, _Connection]:
    connection = _Connection(answers)
    admin: Any = SimpleNamespace(connection=connection)
    return KeycloakEventsCheck(realms, lambda realm: RealmAdmin(admin, realm)), connection


def _run(
    answers: dict[str, requests.Response | Exception], realms: tuple[str, ...] = ("lab",)
) -> dict[tuple[str, str], tuple[str, bool | None]]:
    """(realm, category) -> (status, ok)."""
    check, _ = _check(answers, realms)
    found = {}
    for enforced in check(RULES, TODAY):
        realm = enforced.status.removeprefix("realm ").split(":")[0]
        found[realm, enforced.category] = (enforced.status, enforced.ok)
    return found


def test_no_event_older_than_the_policy_is_ok() -> None:
    found = _run({})
    assert found["lab", "login_events"][1] is True
    assert found["lab", "admin_events"][1] is True


def test_an_event_older_than_the_policy_is_not_ok() -> None:
    found = _run({"admin/realms/lab/events": _json([{"time": 0}])})
    assert found["lab", "login_events"] == (
        f"realm lab: expiry set ({DAYS} days) but events older than that remain",
        False,
    )


def test_the_listing_asked_is_the_oldest_event_before_the_period_and_a_day() -> None:
    check, connection = _check({})
    list(check(RULES, TODAY))
    asked = dict(connection.asked)
    assert asked["admin/realms/lab/events"] == {"dateTo": "2026-06-08", "first": 0, "max": 1}
    assert asked["admin/realms/lab/admin-events"]["dateTo"] == "2026-06-08"


@pytest.mark.parametrize(
    "answer",
    [
        _response(403, b'{"error":"unknown_error"}'),
        _response(500, b""),
        _response(200, b"<html>not Keycloak</html>"),
        _response(200, b'{"error": "a listing was expected"}'),
        requests.ConnectionError("refused"),
        KeycloakConnectionError("Can't connect to server"),
    ],
    ids=["refused", "server error", "not JSON", "not a listing", "unreachable", "no connection"],
)
def test_an_unread_listing_leaves_the_category_unproven(
    answer: requests.Response | Exception,
) -> None:
    found = _run({"admin/realms/lab/events": answer, "admin/realms/lab/admin-events": answer})
    for category in RULES:
        status, ok = found["lab", category]
        assert ok is None, (category, status)
        assert "could not be read" in status


# -- every realm, master included ----------------------------------------------------------


def test_an_old_admin_event_in_master_fails_master_alone() -> None:
    found = _run({"admin/realms/master/admin-events": _json([{"time": 0}])}, ("lab", "master"))
    assert found["master", "admin_events"] == (
        f"realm master: expiry set ({DAYS} days) but events older than that remain",
        False,
    )
    assert found["master", "login_events"][1] is True
    assert found["lab", "admin_events"][1] is True


def test_master_without_expiration_fails() -> None:
    forever = {"eventsExpiration": None, "attributes": {}}
    found = _run({"admin/realms/master": _json(forever)}, ("lab", "master"))
    for category in RULES:
        status, ok = found["master", category]
        assert ok is False
        assert status.startswith("realm master: Keycloak keeps them forever, the policy 180")
    assert found["lab", "login_events"][1] is True


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (_response(403, b'{"error":"unknown_error"}'), "no view-realm or manage-realm role"),
        (_response(404, b'{"error":"Realm not found."}'), "HTTP 404"),
        (requests.ConnectionError("refused"), "Keycloak unreachable"),
        (KeycloakConnectionError("Can't connect to server"), "Keycloak unreachable"),
    ],
    ids=["refused", "absent", "unreachable", "no connection"],
)
def test_unreadable_master_settings_leave_master_unproven(
    answer: requests.Response | Exception, said: str
) -> None:
    found = _run({"admin/realms/master": answer}, ("lab", "master"))
    for category in RULES:
        status, ok = found["master", category]
        assert ok is None, status
        assert status.startswith("realm master: settings unreadable (")
        assert said in status
    assert found["lab", "admin_events"][1] is True


def test_a_realm_the_service_client_cannot_sign_in_to_is_unproven() -> None:
    connection = _Connection({})
    admin: Any = SimpleNamespace(connection=connection)

    def realm_admin(realm: str) -> RealmAdmin:
        if realm == "autre":
            raise KeycloakAdminError("Keycloak refused the client 'x' of realm 'autre'")
        return RealmAdmin(admin, realm)

    found = list(KeycloakEventsCheck(("lab", "autre"), realm_admin)(RULES, TODAY))
    autre = [e for e in found if e.status.startswith("realm autre:")]
    assert sorted(e.category for e in autre) == sorted(RULES)
    assert all(e.ok is None and "refused the client 'x'" in e.status for e in autre)
    assert [e.ok for e in found if e.status.startswith("realm lab:")] == [True, True]


def test_no_events_category_in_the_policy_reads_nothing() -> None:
    check, connection = _check({})
    assert list(check({}, TODAY)) == []
    assert connection.asked == []


# -- where the check is built: the deployment's realms, and master -------------------------


def _connection(realm: str = "academie") -> Connection:
    return Connection("https://auth-admin.example.test", realm, "educloud-data-rights", "s3")


def test_tenant_realms_sign_in_with_their_own_client_and_master_uses_the_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    signed_in: list[str] = []

    def sign_in(cls: type[RealmAdmin], connection: Connection) -> RealmAdmin:
        signed_in.append(connection.realm)
        assert connection.client_id == "educloud-data-rights" and connection.client_secret
        return cls(SimpleNamespace(), connection.realm)  # type: ignore[arg-type]

    monkeypatch.setattr(RealmAdmin, "connect", classmethod(sign_in))
    primary: Any = SimpleNamespace(name="the academie session")
    realm_admin = connect.realm_admins(_connection(), primary, ("academie", "autre"))

    assert realm_admin("academie").admin is primary
    assert realm_admin("autre").realm == "autre" and realm_admin("autre").admin is not primary
    master = realm_admin("master")
    assert (master.realm, master.admin) == ("master", primary)
    assert signed_in == ["autre"]  # once, and never in master


@pytest.mark.parametrize(
    ("declared", "checked"),
    [
        ((), ("academie", "master")),  # the settings file: its realm
        (("autre", "academie"), ("academie", "autre", "master")),
    ],
)
def test_the_stores_check_every_declared_realm_and_master(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    declared: tuple[str, ...],
    checked: tuple[str, ...],
) -> None:
    admin = SimpleNamespace(connection=_Connection({}))
    monkeypatch.setattr(connect, "connect_admin", lambda connection: admin)
    settings = DataRightsSettings(
        policies_dir=tmp_path,
        exports_dir=tmp_path / "exports",
        journal=tmp_path / "journal.jsonl",
        keycloak=_connection(),
        realms=declared,
    )

    with connect.open_stores(settings) as stores:
        [check] = [c for c in stores.checks if isinstance(c, KeycloakEventsCheck)]

    assert tuple(check.realms) == checked
