"""The public-exposure checks' logic (educloud.charter.exposure): the variants they send and
how they read an answer. The checks themselves run against the lab (tests/charter)."""

from __future__ import annotations

import posixpath
from urllib.parse import unquote

from educloud.charter import exposure

NGINX_404 = b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<hr><center>nginx</center>\r\n"


def _nginx_view(raw: str) -> str:
    """The path nginx matches locations against: decoded, slashes merged, dots resolved."""
    decoded = unquote(raw)
    normalised = posixpath.normpath("/" + decoded.lstrip("/"))
    return normalised + ("/" if decoded.endswith("/") and normalised != "/" else "")


def test_variants_include_the_audits_form_and_climbs_out_of_forwarded_prefixes() -> None:
    variants = exposure.encoded_variants("/admin/realms/lab/users/count", ("/realms/lab/",))
    assert variants[0] == "/admin/realms/lab/users/count"
    assert "/admin/realms/..%2f..%2f" in variants  # issue #29, finding 1
    assert "/realms/lab/..%2f..%2fadmin/realms/lab/users/count" in variants
    assert len(variants) == len(set(variants))
    # Every percent-encoded form names the target or "/" once nginx has decoded it.
    for raw in variants:
        if "%5c" in raw or "\\" in raw or ";" in raw:
            continue  # only a service that reads backslashes or ";" as separators climbs
        assert _nginx_view(raw) in ("/admin/realms/lab/users/count", "/"), raw


def test_answers_from_nginx_are_not_the_service() -> None:
    page = exposure.Answer(404, "", NGINX_404)
    assert page.from_nginx
    assert not exposure.keycloak_admin_reached(page)
    assert not exposure.realm_reached(page, "master")
    assert not exposure.keycloak_admin_reached(None)


def test_keycloak_answers_are_recognised() -> None:
    assert exposure.keycloak_admin_reached(exposure.Answer(200, "", b"42"))
    assert exposure.keycloak_admin_reached(
        exposure.Answer(404, "", b'{"error":"Realm not found."}')
    )
    assert exposure.keycloak_admin_reached(exposure.Answer(401, "", b'{"error":"HTTP 401"}'))
    assert not exposure.keycloak_admin_reached(exposure.Answer(404, "", b"<html>Not Found"))
    assert exposure.realm_reached(exposure.Answer(401, "", b'{"error":"invalid_grant"}'), "master")
    issuer = b'{"issuer":"https://auth.example.test/realms/master"}'
    assert exposure.realm_reached(exposure.Answer(200, "", issuer), "master")
    # Keycloak's 404 for a path below another realm is not the master realm answering.
    not_found = b'{"error":"Unable to find matching target resource method"}'
    assert not exposure.realm_reached(exposure.Answer(404, "", not_found), "master")


def test_unknown_names_get_421_or_nothing() -> None:
    assert exposure.unknown_name_problem(None, "https") is None
    assert exposure.unknown_name_problem(exposure.Answer(421, "", b""), "https") is None
    welcome = exposure.unknown_name_problem(exposure.Answer(200, "", b"Welcome to nginx"), "https")
    assert welcome and "200" in welcome
    redirect = exposure.unknown_name_problem(
        exposure.Answer(301, f"https://{exposure.UNKNOWN_NAME}/", b""), "http"
    )
    assert redirect and exposure.UNKNOWN_NAME in redirect
