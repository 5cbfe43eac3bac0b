"""The credential journal and the choice of import path (no server needed)."""

from __future__ import annotations

import io
import json
from datetime import date
from pathlib import Path

import pytest

from educloud.accounts.credentials import JOURNAL_NAME, CredentialJournal
from educloud.accounts.keycloak_directory import ImportPath
from educloud.accounts.policy import load_policy
from educloud.accounts.sheets import CredentialSlip
from educloud.accounts.sync import (
    NAIVE_BELOW,
    choose_path,
    make_plan,
    write_plan_json,
)
from educloud.errors import EducloudError

DATA = Path(__file__).parent / "data" / "accounts"


def _slip(account_id: str) -> CredentialSlip:
    return CredentialSlip(account_id, "Léa", "Martin", "0750001U", "3A", account_id, "")


def test_password_is_journaled_before_use_and_reused_after_a_restart(tmp_path):
    first = CredentialJournal(tmp_path / "state")
    password = first.password_for(_slip("p1"))

    journal = tmp_path / "state" / JOURNAL_NAME
    assert journal.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    assert password in journal.read_text()
    again = CredentialJournal(tmp_path / "state")  # the next apply, after a kill
    assert again.password_for(_slip("p1")) == password
    assert len(again) == 1


def test_a_line_cut_by_a_kill_is_ignored_but_damage_elsewhere_is_refused(tmp_path):
    state = tmp_path / "state"
    CredentialJournal(state).password_for(_slip("p1"))
    journal = state / JOURNAL_NAME
    journal.write_text(journal.read_text() + '{"account_id": "p2", "giv')

    assert [s.account_id for s in CredentialJournal(state).slips()] == ["p1"]
    CredentialJournal(state).password_for(_slip("p3"))  # starts on a line of its own
    assert [s.account_id for s in CredentialJournal(state).slips()] == ["p1", "p3"]

    journal.write_text('{"broken\n' + journal.read_text())
    with pytest.raises(EducloudError, match="line 1 is damaged"):
        CredentialJournal(state)


def test_path_follows_the_size_of_the_change():
    assert choose_path(NAIVE_BELOW - 1) is ImportPath.NAIVE
    assert choose_path(NAIVE_BELOW) is ImportPath.BATCHED
    assert choose_path(500_000) is ImportPath.BATCHED  # offline import is never picked


def test_json_plan_is_one_document_with_every_change():
    report = make_plan(
        DATA / "canonical.csv",
        mapping="canonical",
        encoding=None,
        policy=load_policy(),
        directory=None,
        today=date(2026, 11, 26),
    )
    out = io.StringIO()
    write_plan_json(report, out)

    document = json.loads(out.getvalue())
    assert document["valid"] is True
    assert len(document["changes"]) == sum(document["counts"].values())
    assert document["against"] == "an empty directory"


def test_unreachable_keycloak_is_one_clear_error():
    from educloud.accounts.keycloak_directory import KeycloakDirectory
    from educloud.clients.keycloak import Connection

    closed = Connection("https://127.0.0.1:9", "lab", "educloud-accounts", "secret", timeout=5)
    with pytest.raises(EducloudError, match="is unreachable") as raised:
        KeycloakDirectory.connect(closed)
    assert "secret" not in str(raised.value)
