"""NextcloudApiDouble answers as Nextcloud 34's code does (tests/doubles), seen from raw
HTTP requests: what the client tests rest on.

- public.php/dav: apps/dav/appinfo/v2/publicremote.php refuses every method but GET
  without "X-Requested-With: XMLHttpRequest" while outgoing federated sharing is off
  (401, no challenge); apps/dav/lib/Connector/Sabre/PublicAuth.php asks a protected
  link's password before that, and answers "DummyBasic" to a wrong one sent over AJAX.
- DELETE cloud/users/<id>: apps/provisioning_api UsersController::deleteUser answers 998
  for an id Nextcloud does not have (v1 HTTP 200, v2 HTTP 404; nextcloud/server#28894),
  101 for the caller's own account, 998 to a caller that may not delete the account.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import requests
from tests.doubles.nextcloud_api_double import NextcloudApiDouble

from educloud.clients.nextcloud import NextcloudClient

_AJAX = {"X-Requested-With": "XMLHttpRequest"}
LINK_PASSWORD = "Link-Secret-9"  # noqa: S105 (a test value)
_OWNER = (
    b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns">'
    b"<d:prop><oc:owner-id/></d:prop></d:propfind>"
)


@pytest.fixture
def double() -> Iterator[NextcloudApiDouble]:
    with NextcloudApiDouble() as server:
        yield server


def _links(double: NextcloudApiDouble) -> tuple[str, str]:
    """An open and a password-protected public link of the admin's files: their tokens."""
    admin = NextcloudClient(double.url, double.admin_user, double.admin_password, timeout=5)
    admin.upload("open.odt", b"open")
    admin.upload("closed.odt", b"closed")
    open_link = admin.create_public_link("open.odt")
    closed_link = admin.create_public_link("closed.odt", password=LINK_PASSWORD)
    return str(open_link.token), str(closed_link.token)


def _public(
    double: NextcloudApiDouble, method: str, token: str, headers: dict[str, str] | None = None
) -> requests.Response:
    return requests.request(
        method,
        f"{double.url}/public.php/dav/files/{token}",
        headers={"Depth": "0", **(headers or {})},
        data=_OWNER if method == "PROPFIND" else None,
        timeout=5,
    )


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _sabre_message(response: requests.Response) -> str | None:
    return ET.fromstring(response.content).findtext("{http://sabredav.org/ns}message")  # noqa: S314


def test_public_dav_refuses_any_method_but_get_without_the_ajax_header(
    double: NextcloudApiDouble,
) -> None:
    open_token, _ = _links(double)

    refused = _public(double, "PROPFIND", open_token)
    # publicremote.php: a bare NotAuthenticated, no challenge, no message.
    assert refused.status_code == 401
    assert "WWW-Authenticate" not in refused.headers
    assert _sabre_message(refused) == ""
    # The header must be one of the comma-separated items exactly (in_array on explode).
    other = {"X-Requested-With": "fetch"}
    assert _public(double, "PROPFIND", open_token, other).status_code == 401
    assert _public(double, "PROPFIND", open_token, _AJAX).status_code == 207
    sent = {"X-Requested-With": "Foo,XMLHttpRequest"}
    assert _public(double, "PROPFIND", open_token, sent).status_code == 207
    # GET is let through (the gate is on other methods only).
    assert _public(double, "GET", open_token).status_code != 401


def test_public_dav_takes_requests_without_the_header_while_outgoing_federation_is_on() -> None:
    with NextcloudApiDouble(outgoing_federation=True) as double:
        open_token, _ = _links(double)

        assert _public(double, "PROPFIND", open_token).status_code == 207


def test_public_dav_asks_a_protected_links_password_before_the_ajax_gate(
    double: NextcloudApiDouble,
) -> None:
    open_token, closed_token = _links(double)

    for headers in ({}, _AJAX):
        # PublicAuth::checkToken: the same bare 401 as the gate, with or without the header.
        asked = _public(double, "PROPFIND", closed_token, headers)
        assert (asked.status_code, _sabre_message(asked)) == (401, "")
        assert "WWW-Authenticate" not in asked.headers
    # A wrong password over AJAX: the dummy challenge (no browser prompt).
    wrong = _public(double, "PROPFIND", closed_token, {**_AJAX, **_basic("anonymous", "")})
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"] == 'DummyBasic realm="Nextcloud"'
    assert _sabre_message(wrong) == "Cannot authenticate over ajax calls"
    # Without the header: Sabre's Basic challenge.
    plain = _public(double, "PROPFIND", closed_token, _basic("anonymous", ""))
    assert plain.headers["WWW-Authenticate"].startswith("Basic ")
    # The right password, under any user name, then the gate.
    right = _basic("someone", LINK_PASSWORD)
    assert _public(double, "PROPFIND", closed_token, right).status_code == 401
    assert _public(double, "PROPFIND", closed_token, {**right, **_AJAX}).status_code == 207
    # An open link with credentials is open; an unknown token is 404 without them.
    with_credentials = {**_AJAX, **_basic("x", "")}
    assert _public(double, "PROPFIND", open_token, with_credentials).status_code == 207
    assert _public(double, "PROPFIND", "NoSuchToken1", _AJAX).status_code == 404


def _ocs(
    double: NextcloudApiDouble, version: int, method: str, route: str, user: str, password: str
) -> tuple[int, dict[str, Any]]:
    response = requests.request(
        method,
        f"{double.url}/ocs/v{version}.php/{route}",
        params={"format": "json"},
        headers={"OCS-APIRequest": "true"},
        auth=(user, password),
        timeout=5,
    )
    return response.status_code, response.json()["ocs"]["meta"]


@pytest.mark.parametrize(("version", "http_status"), [(1, 200), (2, 400)])
def test_an_admin_deleting_itself_is_refused_with_101(
    double: NextcloudApiDouble, version: int, http_status: int
) -> None:
    route = f"cloud/users/{double.admin_user}"
    status, meta = _ocs(double, version, "DELETE", route, double.admin_user, double.admin_password)

    assert (status, meta["statuscode"]) == (http_status, 101)
    assert double.admin_user in double.accounts


def test_an_account_that_is_no_admin_may_delete_no_one(double: NextcloudApiDouble) -> None:
    admin = NextcloudClient(double.url, double.admin_user, double.admin_password, timeout=5)
    for user_id in ("bob", "carol"):
        admin.create_user(user_id, "Correct-Horse-7")

    for target in (double.admin_user, "carol"):
        status, meta = _ocs(double, 1, "DELETE", f"cloud/users/{target}", "bob", "Correct-Horse-7")
        assert (status, meta["statuscode"]) == (200, 998)
    assert {double.admin_user, "bob", "carol"} <= set(double.accounts)
    # Reading tells the two 998 apart: an id Nextcloud does not have is OCS 404.
    seen = {
        target: _ocs(double, 1, "GET", f"cloud/users/{target}", "bob", "Correct-Horse-7")[1]
        for target in ("carol", "nobody")
    }
    assert (seen["carol"]["statuscode"], seen["nobody"]["statuscode"]) == (998, 404)
