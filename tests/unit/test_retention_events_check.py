"""Retention's Keycloak events check never reads "none older found" into a listing it could
not read (C7): a refused, unreachable or non-JSON answer leaves the category unproven.

The admin client is python-keycloak's surface as the check uses it (get_realm and
connection.raw_get returning a requests.Response); the real Keycloak is exercised by
tests/integration/test_retention_lab.py.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
import requests

from educloud.retention.rules import Rule
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


def _response(status: int, body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    return response


class _Connection:
    def __init__(self, answer: requests.Response | Exception) -> None:
        self.answer = answer
        self.asked: list[tuple[str, dict[str, Any]]] = []

    def raw_get(self, path: str, **params: Any) -> requests.Response:
        self.asked.append((path, params))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class _Admin:
    def __init__(self, answer: requests.Response | Exception) -> None:
        self.connection = _Connection(answer)

    def get_realm(self, realm: str) -> dict[str, Any]:
        return REALM


def _run(answer: requests.Response | Exception) -> dict[str, tuple[str, bool | None]]:
    check = KeycloakEventsCheck(_Admin(answer), "lab")  # type: ignore[arg-type]
    return {e.category: (e.status, e.ok) for e in check(RULES, date(2026, 12, 6))}


def test_no_event_older_than_the_policy_is_ok() -> None:
    found = _run(_response(200, b"[]"))
    assert found["login_events"][1] is True
    assert found["admin_events"][1] is True


def test_an_event_older_than_the_policy_is_not_ok() -> None:
    found = _run(_response(200, json.dumps([{"time": 0}]).encode()))
    assert found["login_events"] == (
        f"expiry set ({DAYS} days) but events older than that remain",
        False,
    )


@pytest.mark.parametrize(
    "answer",
    [
        _response(403, b'{"error":"unknown_error"}'),
        _response(500, b""),
        _response(200, b"<html>not Keycloak</html>"),
        _response(200, b'{"error": "a listing was expected"}'),
        requests.ConnectionError("refused"),
    ],
    ids=["refused", "server error", "not JSON", "not a listing", "unreachable"],
)
def test_an_unread_listing_leaves_the_category_unproven(
    answer: requests.Response | Exception,
) -> None:
    found = _run(answer)
    for category in RULES:
        status, ok = found[category]
        assert ok is None, (category, status)
        assert "could not be read" in status
