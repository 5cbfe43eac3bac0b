"""Attacks on the illicit-content report form (C9), issue #29 findings 3 and 6, on the lab.

From the host side (198.18.0.1) through nginx at https://cloud.educloud.test/signalement:
a replayed token, cross-site posts, a report whose link holds Rich markup, escape
sequences; then `educloud moderation list` on the admin site must show the stored link
verbatim and not crash. A bounded flood (under 100 requests, under 30 s) is sent on edu1
to the service's loopback port as nginx would relay it for other lab addresses
(X-Forwarded-For 198.18.0.200-201 only), after which a real report still goes through.

    educloud lab up && pytest tests/lab/test_attack_reporting.py -p no:cacheprovider -v

The reports this creates are dismissed at the end (by "attack-test"), so the lab's open
list stays as it was. Every accepted post counts against the hourly quotas: the module
starts by emptying the service's quota window on edu1 (as if an hour had passed), so it
can run again within the hour (a second run used to meet 429s, not the controls).
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from rich.console import Console
from tests.charter.test_reporting import _request
from tests.lab.lab_shell import lab_ssh
from typer.testing import CliRunner

from educloud.cli import moderation as moderation_cli
from educloud.cli.main import app
from educloud.deployment import model as deployment_mod
from educloud.lab import secrets as lab_secrets
from educloud.lab.settings import LabPaths
from educloud.netpin import pinned_names
from educloud.paths import inventories_dir
from educloud.reporting import moderation

pytestmark = pytest.mark.lab

SITE = "cloud.educloud.test"
ADMIN_SITE = "auth-admin.educloud.test"
FORM = f"https://{SITE}/signalement"
API = f"https://{ADMIN_SITE}/moderation/api"
OWN_ORIGIN = f"https://{SITE}"
SERVICE_HOST = "edu1"
TOKEN_MIN_AGE = 3  # reporting_form_token_min_age_seconds (the role's default)
DESCRIPTION = "Test d'attaque (issue 29) : à classer sans suite."
MARKUP_LINK = f"https://{SITE}/s/AttackTest29?[/]&[link=https://evil]x[/link]&[bold]gras"
ESCAPE_LINKS = {
    "ESC CSI": f"https://{SITE}/s/AttackTest29?\x1b[2J",
    "OSC 8 hyperlink": f"https://{SITE}/s/AttackTest29?\x1b]8;;https://evil\x07x",
    "carriage return": f"https://{SITE}/s/AttackTest29?\rfaux",
    "C1 CSI": f"https://{SITE}/s/AttackTest29?\x9b31m",
    "bidi override": f"https://{SITE}/s/AttackTest29\u202egpj.exe",
}
RAW_CONTROLS = ("\x1b", "\x07", "\r", "\x9b", "\u202e")


@pytest.fixture(scope="module")
def ca_bundle() -> str:
    return str(LabPaths.default().root / "ca.crt")


@pytest.fixture(scope="module")
def reachable(lab_hosts: object) -> Iterator[None]:
    """The lab's names resolved to its reverse proxy, in this process."""
    with pinned_names(deployment_mod.load(inventories_dir() / "lab").pins()):
        yield


@pytest.fixture(scope="module", autouse=True)
def _quota_window_elapsed(lab_hosts: object) -> None:
    """The lab's report quotas as an hour later: no submission counted (spent tokens stay)."""
    lab_ssh(
        SERVICE_HOST,
        "runuser -u postgres -- psql -X -q -d educloud_reports -c 'DELETE FROM report_submissions'",
    )


@pytest.fixture(scope="module")
def moderation_token() -> str:
    return lab_secrets.read(LabPaths.default())["vault_reports_moderation_token"]


@pytest.fixture(scope="module")
def created(reachable: None, ca_bundle: str, moderation_token: str) -> Iterator[list[str]]:
    """References of the reports the attacks created, dismissed at the end."""
    references: list[str] = []
    yield references
    client = moderation.ModerationClient(API, moderation_token, verify=ca_bundle)
    for reference in references:
        with contextlib.suppress(moderation.ModerationError):  # dismissed already
            moderation.dismiss(client, reference, by="attack-test", note="issue 29 attack test")


def _fresh_token(ca_bundle: str) -> str:
    page = _request("GET", FORM, verify=ca_bundle)
    assert page.status_code == 200, f"GET {FORM}: {page.status_code}"
    found = re.search(r'name="jeton" value="([^"]+)"', page.text)
    assert found, "no token in the form"
    token = found.group(1)
    issued = int(token.split(".", 1)[0])
    deadline = time.monotonic() + TOKEN_MIN_AGE + 10
    while time.time() <= issued + TOKEN_MIN_AGE + 1:  # the form's minimum age, by the clock
        assert time.monotonic() < deadline, "the token never became old enough"
        time.sleep(0.2)
    return token


def _fields(token: str, link: str = f"https://{SITE}/s/AttackTest29") -> dict[str, str]:
    return {
        "type": "lien",
        "lien": link,
        "description": DESCRIPTION,
        "consentement": "oui",
        "jeton": token,
        "site_web": "",
    }


def _post(ca_bundle: str, data: dict[str, str], **headers: str) -> requests.Response:
    sent = {"Origin": OWN_ORIGIN, **headers}
    return _request("POST", FORM, data=data, headers=sent, verify=ca_bundle)


def _reference(answer: requests.Response) -> str:
    found = re.search(r"SIG-[A-Z0-9]{6}", answer.text)
    assert answer.status_code == 200 and found, f"{answer.status_code}: {answer.text[:300]}"
    return found.group(0)


def test_replayed_token_is_refused(ca_bundle: str, created: list[str]) -> None:
    data = _fields(_fresh_token(ca_bundle))

    created.append(_reference(_post(ca_bundle, data)))
    replayed = _post(ca_bundle, data)
    altered = _post(ca_bundle, {**data, "description": DESCRIPTION + " (bis)"})

    assert replayed.status_code == 400, f"a replayed token got {replayed.status_code}"
    assert "déjà été envoyé" in replayed.text
    assert altered.status_code == 400, f"a replayed token got {altered.status_code}"


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": f"http://{SITE}"},
        {"Origin": f"https://{SITE}.evil.example"},
        {"Referer": "https://evil.example/page"},
    ],
    ids=["other site", "opaque origin", "plain http", "look-alike", "referer of other site"],
)
def test_cross_site_post_is_refused(
    ca_bundle: str, created: list[str], headers: dict[str, str]
) -> None:
    data = _fields(_fresh_token(ca_bundle))
    answer = _request("POST", FORM, data=data, headers=headers, verify=ca_bundle)
    if answer.status_code == 200:
        created.append(_reference(answer))

    assert answer.status_code == 403, f"a cross-site post ({headers}) got {answer.status_code}"
    assert "pas été envoyé depuis le formulaire de la plateforme" in answer.text


@pytest.mark.parametrize("link", ESCAPE_LINKS.values(), ids=ESCAPE_LINKS.keys())
def test_escape_sequences_in_a_link_are_refused(
    ca_bundle: str, created: list[str], link: str
) -> None:
    answer = _post(ca_bundle, _fields(_fresh_token(ca_bundle), link))
    if answer.status_code == 200:
        created.append(_reference(answer))

    assert answer.status_code == 400, f"a link with {link!r} got {answer.status_code}"
    assert "pas une adresse valide" in answer.text


def test_moderators_see_a_markup_link_as_it_was_stored(
    ca_bundle: str, created: list[str], moderation_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = _reference(_post(ca_bundle, _fields(_fresh_token(ca_bundle), MARKUP_LINK)))
    created.append(reference)
    monkeypatch.setenv(moderation.TOKEN_ENV, moderation_token)
    # A wide console: the table's link cell on one line, whatever the terminal running pytest.
    monkeypatch.setattr(moderation_cli, "console", Console(width=400))
    monkeypatch.setattr(moderation_cli, "err_console", Console(width=400, stderr=True))
    common = ["--url", API, "--ca", ca_bundle]

    listed = CliRunner().invoke(app, ["moderation", "list", *common])
    shown = CliRunner().invoke(app, ["moderation", "show", reference, *common])

    assert listed.exit_code == 0, f"educloud moderation list failed: {listed.output}"
    assert reference in listed.output
    assert MARKUP_LINK in listed.output, listed.output
    assert shown.exit_code == 0, shown.output
    assert f"link: {MARKUP_LINK}" in shown.output
    for output in (listed.output, shown.output):
        assert not any(c in output for c in RAW_CONTROLS)


# Sent on edu1 to the service's loopback port, as nginx relays posts (X-Forwarded-For):
# one lab address posting 20 reports (each with its own token), another replaying one token
# 30 times. 90 requests; python3 is the host's own (Debian's), standard library only.
FLOOD_SCRIPT = r"""
import json, re, sys, time, urllib.error, urllib.parse, urllib.request
port, site, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
url = f"http://127.0.0.1:{port}{path}"

def call(address, data=None):
    headers = {"Host": site, "X-Forwarded-For": address, "X-Forwarded-Proto": "https"}
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()

def token(address):
    return re.search(r'name="jeton" value="([^"]+)"', call(address)[1]).group(1)

def fields(jeton):
    return {"type": "description", "description": "Inondation de test (issue 29), sans suite.",
            "consentement": "oui", "jeton": jeton, "site_web": ""}

started = time.monotonic()
tokens = [token("198.18.0.200") for _ in range(20)]
replayed = token("198.18.0.201")
time.sleep(4)  # the form's minimum age, once for all the tokens
one_address = [call("198.18.0.200", fields(t)) for t in tokens]
replays = [call("198.18.0.201", fields(replayed)) for _ in range(30)]
print(json.dumps({
    "one_address": [code for code, _ in one_address],
    "replays": [code for code, _ in replays],
    "references": sorted(set(re.findall(r"SIG-[A-Z0-9]{6}", "".join(
        page for code, page in one_address + replays if code == 200)))),
    "seconds": time.monotonic() - started,
}))
"""


def _flood() -> dict[str, Any]:
    command = shlex.join(
        ["timeout", "30", "python3", "-c", FLOOD_SCRIPT, "8090", SITE, "/signalement"]
    )
    result: dict[str, Any] = json.loads(lab_ssh(SERVICE_HOST, command).strip().splitlines()[-1])
    return result


def test_real_report_goes_through_after_a_bounded_flood(
    ca_bundle: str, created: list[str], reachable: None
) -> None:
    flood = _flood()
    created.extend(flood["references"])

    assert flood["seconds"] < 30
    one_address, replays = flood["one_address"], flood["replays"]
    assert one_address.count(200) <= 5, f"one address got {one_address.count(200)} reports in"
    assert set(one_address[5:]) == {429}, one_address
    assert replays.count(200) == 1, f"one token gave {replays.count(200)} reports"
    assert set(replays) <= {200, 400}, replays
    # A person on another address reports as usual, through the proxy.
    real = _post(ca_bundle, _fields(_fresh_token(ca_bundle)))
    created.append(_reference(real))
