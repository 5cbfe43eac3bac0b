"""The illicit-content report service (C9) against a real PostgreSQL and a real SMTP sink.

The WSGI app is served by wsgiref on 127.0.0.1 and driven with requests, as nginx would
forward a browser's requests (tests/unit/reports_support.py). Each test gets a fresh
database; nothing leaves this machine.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from tests.unit.reports_support import PostgresCluster, Service, serve, token_for

from educloud.reporting.service import form, pages

pytestmark = pytest.mark.charter("C9")

PACKAGE = Path(__file__).parents[2] / "python_tools/educloud/reporting/service"
SHARE_LINK = "https://cloud.educloud.test/s/Xk4pQ9zT2bLm"
DESCRIPTION = "Un partage public contient des photos d'élèves diffusées sans autorisation."


def fields(service: Service, **changes: str | None) -> dict[str, str]:
    """A valid post, as the form sends it 10 s after it was served; None drops a field."""
    values: dict[str, str | None] = {
        "type": "lien",
        "lien": SHARE_LINK,
        "description": DESCRIPTION,
        "contact": "parent@example.org",
        "consentement": "oui",
        "jeton": token_for(service),
        "site_web": "",
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def post(service: Service, data: Any, **kwargs: Any) -> requests.Response:
    return requests.post(service.form_url, data=data, timeout=10, **kwargs)


def report_count(service: Service) -> int:
    return int(service.rows("SELECT count(*) FROM reports")[0][0])


def reference_in(page: str) -> str:
    found = re.search(r"SIG-[A-Z0-9]{6}", page)
    assert found, page
    return found.group(0)


def api(service: Service, method: str, route: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {service.token}", **kwargs.pop("headers", {})}
    return requests.request(method, f"{service.api}/{route}", headers=headers, timeout=10, **kwargs)


# -- the public form ---------------------------------------------------------------------


def test_form_is_a_french_page_without_script_or_third_party(service: Service) -> None:
    page = requests.get(service.form_url, timeout=10)

    assert page.status_code == 200
    assert '<html lang="fr">' in page.text
    assert "Signaler un contenu illicite" in page.text
    assert "<script" not in page.text
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)  # nothing from elsewhere
    assert 'name="jeton"' in page.text
    assert 'name="site_web"' in page.text
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert f"'sha256-{pages.STYLE_HASH}'" in csp


def test_valid_report_is_stored_and_mailed_to_the_moderators_in_french(service: Service) -> None:
    page = requests.get(service.form_url, timeout=10).text
    token = re.search(r'name="jeton" value="([^"]+)"', page)
    assert token
    service.clock.advance(5)  # a person takes a few seconds to fill the form

    receipt = post(service, fields(service, jeton=token.group(1)))

    assert receipt.status_code == 200, receipt.text
    assert "Signalement enregistré" in receipt.text
    reference = reference_in(receipt.text)
    stored = service.rows(
        "SELECT content_kind, link, description, contact_email, status, notify_pending "
        "FROM reports WHERE id = %s",
        (reference,),
    )
    assert stored == [("share_link", SHARE_LINK, DESCRIPTION, "parent@example.org", "open", False)]
    assert len(service.smtp.messages) == 1
    sender, recipients, mail = service.smtp.messages[0]
    assert sender == "signalement@educloud.test"
    assert sorted(recipients) == ["dpo@educloud.test", "moderation@educloud.test"]
    assert mail["Subject"] == f"[educloud test] Nouveau signalement {reference}"
    body = mail.get_content()
    assert f"Référence : {reference}" in body
    assert SHARE_LINK in body
    assert f"educloud moderation show {reference}" in body
    # The description and the reporter's address stay in the database (archived there).
    assert DESCRIPTION not in body
    assert "parent@example.org" not in body


def test_oversized_body_is_refused_before_it_is_read(service: Service) -> None:
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        # Only the headers are sent: a server waiting for the 10 MB body would never answer.
        connection.sendall(
            b"POST /signalement HTTP/1.1\r\nHost: cloud.educloud.test\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 10000000\r\n\r\n"
        )
        answer = connection.makefile("rb").read()

    assert answer.startswith(b"HTTP/1.0 413") or answer.startswith(b"HTTP/1.1 413"), answer[:80]
    assert b"trop volumineux" in answer
    assert report_count(service) == 0


def test_body_one_byte_over_the_limit_is_refused(service: Service) -> None:
    limit = service.app.config.max_body_bytes
    # A declared length over the limit with a body that is not sent: the answer comes first.
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            b"POST /signalement HTTP/1.1\r\nHost: cloud.educloud.test\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            + f"Content-Length: {limit + 1}\r\n\r\n".encode()
        )
        answer = connection.makefile("rb").read()

    assert b" 413 " in answer.split(b"\r\n", 1)[0]
    assert report_count(service) == 0


MALFORMED: dict[str, tuple[dict[str, Any], str]] = {
    "no description": ({"description": None}, "Décrivez le contenu signalé"),
    "description too short": ({"description": "court"}, "au moins 10 caractères"),
    "description too long": ({"description": "a" * 4001}, "trop longue"),
    "control character": ({"description": DESCRIPTION + "\x07"}, "caractères non autorisés"),
    "foreign link": ({"lien": "https://evil.example/s/Xk4pQ9zT2bLm"}, "pointer vers la plateforme"),
    "plain http link": ({"lien": "http://cloud.educloud.test/s/Xk4pQ9zT2bLm"}, "https://"),
    "link with credentials": ({"lien": "https://a:b@cloud.educloud.test/s/Xk4p"}, "https://"),
    "not a share link": ({"lien": "https://cloud.educloud.test/apps/files"}, "lien de partage"),
    "share link missing": ({"lien": None}, "Indiquez le lien de partage"),
    "unknown type": ({"type": "video"}, "Choisissez le type"),
    "unknown field": ({"extra": "1"}, "champs inattendus"),
    "honeypot filled": ({"site_web": "http://spam.example"}, "pas valide"),
    "no consent": ({"consentement": None}, "bonne foi"),
    "bad contact e-mail": ({"contact": "pas une adresse"}, "e-mail de contact"),
    "token missing": ({"jeton": None}, "pas valide"),
    "token of the old format": ({"jeton": "1700000000." + "0" * 64}, "pas valide"),
    "token served to another network": (
        {"jeton": "TOKEN_FOR_ANOTHER_NETWORK"},
        "autre connexion",
    ),
    "bidi override in the link": (
        {"lien": "https://cloud.educloud.test/s/Xk4pQ9zT2bLm\u202egpj.exe"},
        "pas une adresse valide",
    ),
    "zero-width space in the link": (
        {"lien": "https://cloud.educloud.test/s/Xk4p\u200bQ9zT2bLm"},
        "pas une adresse valide",
    ),
    "C1 control in the description": (
        {"description": DESCRIPTION + "\x9b31m"},
        "caractères non autorisés",
    ),
    "escape sequence in the contact": ({"contact": "a\x1b[2J@example.org"}, "e-mail de contact"),
}


@pytest.mark.parametrize("changes,reason", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_report_is_refused_in_french_and_nothing_is_stored(
    service: Service, changes: dict[str, Any], reason: str
) -> None:
    if changes.get("jeton") == "TOKEN_FOR_ANOTHER_NETWORK":
        changes = {"jeton": token_for(service, client="198.51.100.7/32")}
    answer = post(service, fields(service, **changes))

    assert answer.status_code == 400
    assert reason in answer.text
    assert "n'a pas été enregistré" in answer.text
    assert report_count(service) == 0
    assert service.smtp.messages == []


def test_refused_form_keeps_what_was_typed(service: Service) -> None:
    answer = post(service, fields(service, lien="https://evil.example/<b>"))

    assert answer.status_code == 400
    assert DESCRIPTION.replace("'", "&#x27;") in answer.text
    assert "<b>" not in answer.text  # escaped


@pytest.mark.parametrize(
    "age,reason",
    [(0, "trop vite"), (30 * 60 + 60, "expiré")],
    ids=["too young", "expired"],
)
def test_token_outside_its_age_window_is_refused(service: Service, age: int, reason: str) -> None:
    token = token_for(service, age)

    answer = post(service, fields(service, jeton=token))

    assert answer.status_code == 400
    assert reason in answer.text
    assert report_count(service) == 0


def test_forged_token_is_refused(service: Service) -> None:
    forged = form.issue_token(
        b"not the server's secret, but long enough", service.clock() - 10, client="127.0.0.1/32"
    )

    answer = post(service, fields(service, jeton=forged))

    assert answer.status_code == 400
    assert report_count(service) == 0


RAW_BODIES = {
    "invalid utf-8 escape": b"type=lien&description=%FF%FE%FD+invalide+vraiment",
    "raw 8-bit byte": "type=lien&description=élève mal encodé".encode("latin-1"),
    "duplicate field": b"type=lien&type=description&description=assez+longue+description",
    "not a form": b"\x00\x01\x02",
}


@pytest.mark.parametrize("body", RAW_BODIES.values(), ids=RAW_BODIES.keys())
def test_badly_encoded_body_is_refused(service: Service, body: bytes) -> None:
    answer = post(service, body, headers={"Content-Type": "application/x-www-form-urlencoded"})

    assert answer.status_code == 400
    assert report_count(service) == 0


def test_body_that_is_not_a_form_post_is_refused(service: Service) -> None:
    answer = requests.post(service.form_url, json={"description": DESCRIPTION}, timeout=10)

    assert answer.status_code == 400
    assert report_count(service) == 0


# -- the form's token: single use, short lived, bound to the client --------------------


def test_token_is_good_for_one_report_only(service: Service) -> None:
    data = fields(service)

    first = post(service, data)
    replayed = post(service, data)
    changed = post(service, {**data, "description": DESCRIPTION + " (bis)"})

    assert first.status_code == 200, first.text
    assert (replayed.status_code, changed.status_code) == (400, 400)
    assert "déjà été envoyé" in replayed.text
    assert report_count(service) == 1
    assert len(service.smtp.messages) == 1
    # The form comes back filled in, with a fresh token, to report something else.
    fresh = re.search(r'name="jeton" value="([^"]+)"', replayed.text)
    assert fresh and fresh.group(1) != data["jeton"]
    assert "photos d&#x27;élèves" in replayed.text


def test_parallel_posts_of_one_token_store_one_report(service: Service) -> None:
    from concurrent.futures import ThreadPoolExecutor

    data = fields(service)
    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = sorted(pool.map(lambda _: post(service, data).status_code, range(6)))

    assert codes == [200] + [400] * 5
    assert report_count(service) == 1


def test_refused_post_does_not_spend_its_token(service: Service) -> None:
    data = fields(service)

    refused = post(service, {**data, "consentement": ""})
    accepted = post(service, data)

    assert refused.status_code == 400
    assert accepted.status_code == 200, accepted.text


def test_token_lifetime_is_a_setting(cluster: PostgresCluster, tmp_path: Path) -> None:
    ages = {"min_age_seconds": 1, "max_age_seconds": 60}
    with serve(cluster, tmp_path, form_token=ages) as service:
        fresh = post(service, fields(service, jeton=token_for(service, 30)))
        stale = post(service, fields(service, jeton=token_for(service, 61)))

    assert fresh.status_code == 200, fresh.text
    assert stale.status_code == 400
    assert "expiré (il est valable 1 minute)" in stale.text


@pytest.mark.parametrize(
    "ages",
    [
        {"min_age_seconds": 3, "max_age_seconds": 2 * 86400},
        {"min_age_seconds": 60, "max_age_seconds": 30},
        {"max_age_seconds": "1800"},
    ],
    ids=["longer than a day", "under the minimum", "as text"],
)
def test_unbounded_token_lifetime_is_refused(
    service: Service, tmp_path: Path, ages: dict[str, Any]
) -> None:
    import yaml

    from educloud.reporting.service.config import ConfigError, load

    settings = yaml.safe_load(service.config_path.read_text())
    settings["form_token"] = ages
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(settings))

    with pytest.raises(ConfigError, match="form_token"):
        load(broken)


# -- where a post comes from -----------------------------------------------------------

CROSS_SITE = {
    "another site": {"Origin": "https://evil.example"},
    "an opaque origin": {"Origin": "null"},
    "another port": {"Origin": "http://127.0.0.1:1"},
    "a look-alike host": {"Origin": "http://127.0.0.1.evil.example"},
    "referer of another site": {"Referer": "https://evil.example/page"},
    "fetch metadata cross-site": {"Sec-Fetch-Site": "cross-site"},
    "own origin but cross-site": {"Origin": "OWN", "Sec-Fetch-Site": "cross-site"},
    "foreign origin, own referer": {"Origin": "https://evil.example", "Referer": "OWN/x"},
}


@pytest.mark.parametrize("headers", CROSS_SITE.values(), ids=CROSS_SITE.keys())
def test_cross_site_post_is_refused_in_french(service: Service, headers: dict[str, str]) -> None:
    headers = {k: v.replace("OWN", service.url) for k, v in headers.items()}

    answer = post(service, fields(service), headers=headers)

    assert answer.status_code == 403
    assert "pas été envoyé depuis le formulaire de la plateforme" in answer.text
    assert '<html lang="fr">' in answer.text
    assert report_count(service) == 0
    assert service.rows("SELECT count(*) FROM report_spent_tokens") == [(0,)]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "OWN"},
        {"Referer": "OWN/signalement"},
        {"Origin": "OWN", "Sec-Fetch-Site": "same-origin"},
        {},
    ],
    ids=["own origin", "own referer, no origin", "fetch metadata same-origin", "neither header"],
)
def test_post_from_the_form_itself_is_accepted(service: Service, headers: dict[str, str]) -> None:
    """A post with neither Origin nor Referer is a program's (every current browser sends
    Origin on a POST), which could claim any origin: accepted, held by token and quota."""
    headers = {k: v.replace("OWN", service.url) for k, v in headers.items()}

    answer = post(service, fields(service), headers=headers)

    assert answer.status_code == 200, answer.text


def test_origin_behind_the_proxy_is_the_public_site(service: Service) -> None:
    proxied = {"Host": "cloud.educloud.test", "X-Forwarded-Proto": "https"}

    own = post(
        service, fields(service), headers={**proxied, "Origin": "https://cloud.educloud.test"}
    )
    plain = post(
        service, fields(service), headers={**proxied, "Origin": "http://cloud.educloud.test"}
    )

    assert own.status_code == 200, own.text
    assert plain.status_code == 403


def test_origin_is_checked_against_the_configured_sites(
    cluster: PostgresCluster, tmp_path: Path
) -> None:
    sites = ["cloud.educloud.test", "auth.educloud.test"]
    with serve(cluster, tmp_path, site_hosts=sites) as service:
        codes = [
            post(service, fields(service), headers={"Origin": origin}).status_code
            for origin in ("https://auth.educloud.test", "https://cloud.educloud.test:443",
                           service.url, "https://educloud.test")
        ]  # fmt: skip

    assert codes == [200, 200, 403, 403]


def test_form_pages_post_their_real_origin(service: Service) -> None:
    """Under `no-referrer` a browser posts `Origin: null`: the pages ask for same-origin."""
    page = requests.get(service.form_url, timeout=10)

    assert '<meta name="referrer" content="same-origin">' in page.text
    assert page.headers["Referrer-Policy"] == "same-origin"


# -- rate limits and minimisation ------------------------------------------------------


def test_sixth_report_from_one_address_within_the_hour_is_refused(service: Service) -> None:
    for _ in range(5):
        assert post(service, fields(service)).status_code == 200

    refused = post(service, fields(service))

    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert "Trop de signalements" in refused.text
    assert report_count(service) == 5


def post_from(service: Service, address: str, **changes: str | None) -> requests.Response:
    """A post relayed by the trusted proxy for `address`, with a token served to it."""
    from educloud.reporting.service.app import client_network

    data = fields(service, **{"jeton": token_for(service, client=client_network(address))})
    data.update({k: v for k, v in changes.items() if v is not None})
    return post(service, data, headers={"X-Forwarded-For": f"203.0.113.250, {address}"})


def test_addresses_behind_the_trusted_proxy_are_counted_apart(service: Service) -> None:
    assert [post_from(service, "198.51.100.7").status_code for _ in range(5)] == [200] * 5

    assert post_from(service, "198.51.100.7").status_code == 429
    assert post_from(service, "198.51.100.8").status_code == 200


def test_ipv6_clients_are_counted_by_their_64(service: Service) -> None:
    """Rotating addresses within one /64 (privacy extensions, one subscriber) count as one."""
    codes = [post_from(service, f"2001:db8:1:2::{n:x}").status_code for n in range(1, 7)]

    assert codes == [200] * 5 + [429]
    assert post_from(service, "2001:db8:1:3::1").status_code == 200  # the next /64


def test_ipv4_mapped_address_is_counted_as_its_ipv4(service: Service) -> None:
    for _ in range(5):
        assert post_from(service, "198.51.100.9").status_code == 200

    assert post_from(service, "::ffff:198.51.100.9").status_code == 429


def test_forwarded_address_from_an_untrusted_peer_is_ignored(
    cluster: PostgresCluster, tmp_path: Path
) -> None:
    with serve(cluster, tmp_path, trusted_proxies=["192.0.2.1"]) as service:
        codes = [
            post(
                service, fields(service), headers={"X-Forwarded-For": f"198.51.100.{n}"}
            ).status_code
            for n in range(6)
        ]

    assert codes == [200] * 5 + [429]  # all counted against the peer, 127.0.0.1


FLOOD_LIMITS = {"per_address_per_hour": 2, "global_per_hour": 20, "ceiling_per_hour": 23}


def test_flood_from_many_clients_leaves_one_report_each_to_the_others(
    cluster: PostgresCluster, tmp_path: Path
) -> None:
    with serve(cluster, tmp_path, rate_limit=FLOOD_LIMITS) as service:
        flood = [post_from(service, f"198.51.100.{n}").status_code for n in range(10) for _ in "ab"]
        assert flood == [200] * 20  # the global quota is reached: a flood

        assert post_from(service, "198.51.100.0").status_code == 429  # a flooder: refused
        newcomers = [post_from(service, f"192.0.2.{n}").status_code for n in (1, 2, 3)]
        assert post_from(service, "192.0.2.1").status_code == 429  # one each during a flood
        over_ceiling = post_from(service, "192.0.2.4")

    assert newcomers == [200, 200, 200]  # people reporting still get through
    assert over_ceiling.status_code == 429  # but never past the ceiling
    assert 0 < int(over_ceiling.headers["Retry-After"]) <= 3600
    assert report_count(service) == 23


@pytest.mark.parametrize(
    "limits,key",
    [
        ({"per_address_per_hour": 100, "global_per_hour": 200}, "global_per_hour"),
        ({"per_address_per_hour": 5, "global_per_hour": 200, "ceiling_per_hour": 100}, "ceiling"),
        ({"per_address_per_hour": 0, "global_per_hour": 200}, "per_address_per_hour"),
        ({"per_address_per_hour": "5", "global_per_hour": 200}, "per_address_per_hour"),
    ],
    ids=["global not 10x per client", "ceiling under global", "no quota", "quota as text"],
)
def test_quota_that_a_few_clients_could_exhaust_is_refused(
    service: Service, tmp_path: Path, limits: dict[str, Any], key: str
) -> None:
    import yaml

    from educloud.reporting.service.config import ConfigError, load

    settings = yaml.safe_load(service.config_path.read_text())
    settings["rate_limit"] = limits
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(settings))

    with pytest.raises(ConfigError, match=key):
        load(broken)


def test_client_address_is_never_stored(service: Service) -> None:
    assert post_from(service, "198.51.100.77").status_code == 200

    dump = "\n".join(
        str(row[0])
        for (table,) in service.rows("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        for row in service.rows(f"SELECT row_to_json(t)::text FROM {table} t")  # noqa: S608
    )
    assert "SIG-" in dump  # the dump does see the stored report
    assert "198.51.100.77" not in dump
    assert "127.0.0.1" not in dump
    assert len(service.rows("SELECT client_hash FROM report_submissions")) == 1


# -- mail to the moderators ------------------------------------------------------------


def test_report_is_kept_when_the_relay_fails_and_mailed_after_the_next_one(
    service: Service,
) -> None:
    service.smtp.refuse = True
    first = reference_in(post(service, fields(service)).text)
    assert service.rows("SELECT notify_pending FROM reports WHERE id = %s", (first,)) == [(True,)]
    assert service.smtp.messages == []

    service.smtp.refuse = False
    second = reference_in(post(service, fields(service)).text)

    mailed = sorted(m["Subject"].split()[-1] for _, _, m in service.smtp.messages)
    assert mailed == sorted([first, second])
    assert service.rows("SELECT count(*) FROM reports WHERE notify_pending") == [(0,)]


def test_notify_endpoint_retries_pending_mails(service: Service) -> None:
    service.smtp.refuse = True
    reference = reference_in(post(service, fields(service)).text)
    service.smtp.refuse = False

    answer = api(service, "POST", "notify")

    assert answer.json() == {"sent": [reference], "pending": []}
    assert len(service.smtp.messages) == 1


def test_health_says_ok_with_the_database(service: Service) -> None:
    answer = requests.get(f"{service.form_url}/health", timeout=10)

    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})


def test_health_fails_without_the_database(cluster: PostgresCluster, tmp_path: Path) -> None:
    database = {"host": str(cluster.socket_dir), "dbname": "absent", "user": "educloud_reports"}
    with serve(cluster, tmp_path, database=database) as service:
        answer = requests.get(f"{service.form_url}/health", timeout=10)
        refused = post(service, fields(service))

    assert answer.status_code == 503
    assert refused.status_code == 503
    assert "indisponible" in refused.text


# -- the moderation API ------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer ", "Bearer wrong-token", "Basic bW9kOnRva2Vu"],
    ids=["missing", "empty", "wrong token", "wrong scheme"],
)
def test_moderation_api_needs_the_moderators_token(
    service: Service, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    answer = requests.get(f"{service.api}/reports", headers=headers, timeout=10)

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert "reports" not in answer.json()


def test_moderators_list_and_read_reports(service: Service) -> None:
    reference = reference_in(post(service, fields(service)).text)

    listed = api(service, "GET", "reports", params={"status": "open"}).json()["reports"]
    shown = api(service, "GET", f"reports/{reference}").json()

    assert [r["id"] for r in listed] == [reference]
    assert shown["description"] == DESCRIPTION
    assert shown["contact_email"] == "parent@example.org"
    assert shown["decisions"] == []
    assert api(service, "GET", "reports", params={"status": "dismissed"}).json() == {"reports": []}
    assert api(service, "GET", "reports/SIG-AAAAAA").status_code == 404


def test_decision_records_who_did_what_and_when(service: Service) -> None:
    reference = reference_in(post(service, fields(service)).text)
    before = datetime.now(UTC)

    answer = api(
        service,
        "POST",
        f"reports/{reference}/decision",
        json={"action": "takedown", "by": "mod.dupont", "note": "photos", "share_ids": ["42"]},
    )

    assert answer.status_code == 200, answer.text
    report = api(service, "GET", f"reports/{reference}").json()
    assert report["status"] == "taken_down"
    [decision] = report["decisions"]
    assert (decision["action"], decision["by"], decision["note"], decision["share_ids"]) == (
        "takedown",
        "mod.dupont",
        "photos",
        ["42"],
    )
    assert before - timedelta(seconds=5) <= datetime.fromisoformat(decision["at"])
    assert datetime.fromisoformat(decision["at"]) <= datetime.now(UTC) + timedelta(seconds=5)


def test_second_decision_on_a_closed_report_needs_reopen(service: Service) -> None:
    reference = reference_in(post(service, fields(service)).text)
    route = f"reports/{reference}/decision"
    api(service, "POST", route, json={"action": "dismiss", "by": "mod.a", "note": "ok"})

    conflict = api(service, "POST", route, json={"action": "takedown", "by": "mod.b"})
    revised = api(
        service, "POST", route, json={"action": "takedown", "by": "mod.b", "reopen": True}
    )

    assert conflict.status_code == 409
    assert revised.status_code == 200
    report = api(service, "GET", f"reports/{reference}").json()
    assert [d["action"] for d in report["decisions"]] == ["dismiss", "takedown"]
    assert report["status"] == "taken_down"
    assert service.rows("SELECT count(*) FROM report_decisions") == [(2,)]  # appended


@pytest.mark.parametrize(
    "body",
    [
        {"action": "delete", "by": "mod"},
        {"action": "dismiss"},
        {"action": "dismiss", "by": "mod", "admin": True},
        {"action": "dismiss", "by": "mod", "share_ids": "42"},
        ["dismiss"],
    ],
    ids=["unknown action", "no author", "unknown key", "share ids not a list", "not an object"],
)
def test_malformed_decision_is_refused(service: Service, body: Any) -> None:
    reference = reference_in(post(service, fields(service)).text)

    answer = api(service, "POST", f"reports/{reference}/decision", json=body)

    assert answer.status_code == 400
    assert service.rows("SELECT count(*) FROM report_decisions") == [(0,)]


def test_decision_that_is_not_json_is_refused(service: Service) -> None:
    reference = reference_in(post(service, fields(service)).text)

    answer = api(
        service,
        "POST",
        f"reports/{reference}/decision",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )

    assert answer.status_code == 400


def test_purge_archives_exactly_the_reports_past_retention(service: Service) -> None:
    old, borderline, recent = (reference_in(post(service, fields(service)).text) for _ in "abc")
    api(
        service,
        "POST",
        f"reports/{old}/decision",
        json={"action": "takedown", "by": "mod.a", "note": "retiré", "share_ids": ["7"]},
    )
    with service.db() as conn, conn.cursor() as cur:
        for reference, days in ((old, 400), (borderline, 366), (recent, 364)):
            cur.execute(
                "UPDATE reports SET created_at = now() - make_interval(days => %s) WHERE id = %s",
                (days, reference),
            )

    answer = api(service, "POST", "purge").json()

    assert answer["archived"] == sorted([old, borderline])
    assert answer["retention_days"] == 365
    rows = {
        r[0]: r[1:]
        for r in service.rows(
            "SELECT id, description, contact_email, link, status, archived_at IS NOT NULL "
            "FROM reports"
        )
    }
    assert rows[old] == (None, None, SHARE_LINK, "taken_down", True)
    assert rows[borderline] == (None, None, SHARE_LINK, "open", True)
    assert rows[recent] == (DESCRIPTION, "parent@example.org", SHARE_LINK, "open", False)
    [decision] = api(service, "GET", f"reports/{old}").json()["decisions"]
    assert (decision["action"], decision["by"], decision["note"], decision["share_ids"]) == (
        "takedown",
        "mod.a",
        "",
        ["7"],
    )
    assert api(service, "POST", "purge").json()["archived"] == []  # idempotent
    late = api(service, "POST", f"reports/{old}/decision", json={"action": "reopen", "by": "x"})
    assert late.status_code == 409
    archived = api(service, "GET", "reports", params={"status": "archived"}).json()["reports"]
    assert sorted(r["id"] for r in archived) == sorted([old, borderline])


def test_retention_archives_through_the_client_never_within_retention(
    service: Service,
) -> None:
    from educloud.reporting.moderation import ModerationClient

    old, recent = (reference_in(post(service, fields(service)).text) for _ in "ab")
    with service.db() as conn, conn.cursor() as cur:
        for reference, days in ((old, 400), (recent, 30)):
            cur.execute(
                "UPDATE reports SET created_at = now() - make_interval(days => %s) WHERE id = %s",
                (days, reference),
            )
    client = ModerationClient(service.api, service.token, timeout=10)
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)

    due = client.due(tomorrow)  # everything so far, as a plan for tomorrow would see it
    archived = client.archive(tomorrow)  # but the service keeps the 30-day-old one

    assert (due, archived) == (2, 1)
    assert service.rows("SELECT id FROM reports WHERE archived_at IS NOT NULL") == [(old,)]
    assert client.due(tomorrow) == 1


# -- the package as the role deploys it ------------------------------------------------


def test_package_runs_as_copied_by_the_role(service: Service, tmp_path: Path) -> None:
    """Copied to <dir>/educloud_reports and imported as gunicorn does: no educloud import."""
    target = tmp_path / "opt"
    shutil.copytree(
        PACKAGE, target / "educloud_reports", ignore=shutil.ignore_patterns("__pycache__")
    )
    probe = (
        "import sys, json, educloud_reports.wsgi as w;"
        "print(json.dumps([type(w.application).__name__,"
        " sorted(m for m in sys.modules if m.split('.')[0] == 'educloud')]))"
    )

    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=target,
        env={"EDUCLOUD_REPORTS_CONFIG": str(service.config_path), "PYTHONSAFEPATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == ["ReportsApp", []]


@pytest.mark.parametrize(
    "change,key",
    [
        ({"moderation_token_sha256": "abc"}, "moderation_token_sha256"),
        ({"smtp": {"host": "relay", "sender": "a@b.test", "moderators": []}}, "smtp.moderators"),
        ({"retention_days": "365"}, "retention_days"),
        ({"public_base_path": "signalement"}, "public_base_path"),
        ({"form_secret_file": "/nonexistent/secret"}, "form_secret_file"),
    ],
    ids=["token hash", "no moderators", "retention as text", "relative path", "no secret"],
)
def test_wrong_configuration_names_the_key(
    service: Service, tmp_path: Path, change: dict[str, Any], key: str
) -> None:
    import yaml

    from educloud.reporting.service.config import ConfigError, load

    settings = yaml.safe_load(service.config_path.read_text())
    settings.update(change)
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(settings))

    with pytest.raises(ConfigError, match=key):
        load(broken)


# -- what a report holds is data, never markup -------------------------------------------

MARKUP_LINK = "https://cloud.educloud.test/s/Xk4pQ9zT2bLm?[/]&[link=https://evil]x[/link]&[bold]"


def test_markup_in_a_link_is_stored_and_mailed_as_it_was_sent(service: Service) -> None:
    reference = reference_in(post(service, fields(service, lien=MARKUP_LINK)).text)

    assert service.rows("SELECT link FROM reports WHERE id = %s", (reference,)) == [(MARKUP_LINK,)]
    [(_, _, mail)] = service.smtp.messages
    assert mail.get_content_type() == "text/plain"
    assert f"Lien signalé : {MARKUP_LINK}" in mail.get_content().splitlines()


def test_control_characters_stored_earlier_are_escaped_in_the_mail(service: Service) -> None:
    """A report stored before the form refused them still reaches the mail as escapes."""
    from educloud.reporting.service import notify, store

    service.smtp.refuse = True
    reference = reference_in(post(service, fields(service)).text)
    hostile = "https://cloud.educloud.test/s/Xk4p\x1b]8;;https://evil\x07\r\u202egpj.exe"
    with service.db() as conn, conn.cursor() as cur:
        cur.execute("UPDATE reports SET link = %s WHERE id = %s", (hostile, reference))
        report = store.get_report(conn, reference)

    body = notify.message(report, service.app.config.smtp, "educloud").get_content()

    assert "https://cloud.educloud.test/s/Xk4p\\x1b]8;;https://evil\\x07\\x0d\\u202egpj.exe" in body
    assert not any(c in body for c in "\x1b\x07\r\u202e")
