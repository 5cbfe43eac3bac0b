"""Takedowns (C9): educloud.reporting.moderation between the real report service (with a
real PostgreSQL, tests/unit/reports_support.py) and the Nextcloud API double
(tests/doubles): Nextcloud itself cannot be installed here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.doubles.nextcloud_api_double import SHARE_LINK, NextcloudApiDouble
from tests.doubles.occ_double import OccDouble
from tests.unit.reports_support import (
    Service,
    submit_report,
)
from typer.testing import CliRunner, Result

from educloud.cli.main import app
from educloud.clients.nextcloud import NextcloudClient, Share
from educloud.clients.nextcloud.occ import SshOcc
from educloud.errors import EducloudError
from educloud.reporting import moderation

pytestmark = pytest.mark.charter("C9")

HOST = "https://cloud.educloud.test"


@pytest.fixture
def double() -> Iterator[NextcloudApiDouble]:
    with NextcloudApiDouble() as server:
        yield server


@pytest.fixture
def nextcloud(double: NextcloudApiDouble) -> NextcloudClient:
    client = NextcloudClient(double.url, double.admin_user, double.admin_password, timeout=5)
    client.create_user("bob", "Correct-Horse-7")
    for name in ("photos.jpg", "cours.odt"):
        client.upload(name, b"content of " + name.encode())
    return client


@pytest.fixture
def mod(service: Service) -> moderation.ModerationClient:
    return moderation.ModerationClient(service.api, service.token, timeout=10)


def shares(double: NextcloudApiDouble) -> set[tuple[int, str, str | None]]:
    return {(s.share_type, s.path, s.token) for s in double.shares.values()}


def test_takedown_disables_exactly_the_reported_public_link(
    service: Service, mod: moderation.ModerationClient, nextcloud: NextcloudClient, double
) -> None:
    reported = nextcloud.create_public_link("photos.jpg")
    nextcloud.create_public_link("cours.odt")
    nextcloud.share_with_user("photos.jpg", "bob")
    reference = submit_report(service, f"{HOST}/s/{reported.token}")
    before = shares(double)

    done = moderation.takedown(mod, nextcloud, reference, by="mod.dupont", note="photos")

    assert before - shares(double) == {(SHARE_LINK, "photos.jpg", reported.token)}
    assert len(shares(double)) == 2  # the other link and the user share stay
    assert nextcloud.public_link_active(str(reported.token)) is False
    assert done.share_ids == (reported.id,)
    assert done.report.status == "taken_down"
    [decision] = mod.get_report(reference).decisions
    assert (decision.action, decision.by, decision.note, decision.share_ids) == (
        "takedown",
        "mod.dupont",
        "photos",
        (reported.id,),
    )


def test_dry_run_shows_the_share_and_changes_nothing(
    service: Service, mod: moderation.ModerationClient, nextcloud: NextcloudClient, double
) -> None:
    reported = nextcloud.create_public_link("photos.jpg")
    reference = submit_report(service, f"{HOST}/index.php/s/{reported.token}")
    before = shares(double)

    planned = moderation.takedown(mod, nextcloud, reference, by="mod.dupont", dry_run=True)

    assert (planned.dry_run, planned.share_ids, planned.paths) == (
        True,
        (reported.id,),
        ("/photos.jpg",),
    )
    assert shares(double) == before
    report = mod.get_report(reference)
    assert (report.status, report.decisions) == ("open", ())


def test_repeated_takedown_is_idempotent(
    service: Service, mod: moderation.ModerationClient, nextcloud: NextcloudClient, double
) -> None:
    reported = nextcloud.create_public_link("photos.jpg")
    nextcloud.create_public_link("cours.odt")
    reference = submit_report(service, f"{HOST}/s/{reported.token}")
    moderation.takedown(mod, nextcloud, reference, by="mod.dupont")
    after_first = shares(double)

    again = moderation.takedown(mod, nextcloud, reference, by="mod.martin")

    assert again.already_recorded
    assert shares(double) == after_first
    assert [d.by for d in mod.get_report(reference).decisions] == ["mod.dupont"]


def test_takedown_of_a_link_already_gone_is_recorded(
    service: Service, mod: moderation.ModerationClient, nextcloud: NextcloudClient
) -> None:
    reported = nextcloud.create_public_link("photos.jpg")
    reference = submit_report(service, f"{HOST}/s/{reported.token}")
    nextcloud.delete_share(reported.id)  # the owner removed it meanwhile

    done = moderation.takedown(mod, nextcloud, reference, by="mod.dupont")

    assert (done.already_gone, done.share_ids) == (True, ())
    [decision] = mod.get_report(reference).decisions
    assert decision.action == "takedown"
    assert "already gone" in decision.note


@pytest.mark.parametrize("password", [None, "Secret-Link-9"], ids=["open", "password"])
def test_link_of_another_account_is_not_recorded_as_taken_down(
    service: Service,
    mod: moderation.ModerationClient,
    nextcloud: NextcloudClient,
    double: NextcloudApiDouble,
    password: str | None,
) -> None:
    bob = NextcloudClient(double.url, "bob", "Correct-Horse-7", timeout=5)
    bob.upload("devoir.pdf", b"%PDF")
    theirs = bob.create_public_link("devoir.pdf", password=password)
    reference = submit_report(service, f"{HOST}/s/{theirs.token}")

    with pytest.raises(moderation.ModerationError, match="not a share of admin"):
        moderation.takedown(mod, nextcloud, reference, by="mod.dupont")

    assert bob.public_link_active(str(theirs.token))
    assert mod.get_report(reference).decisions == ()


@pytest.fixture
def occ(double: NextcloudApiDouble, tmp_path: Path) -> OccDouble:
    return OccDouble(double, tmp_path)


@pytest.fixture
def owners(double: NextcloudApiDouble, occ: OccDouble) -> moderation.OccOwnerAccess:
    return moderation.OccOwnerAccess(occ, double.url)


def bobs_links(double: NextcloudApiDouble, password: str | None = None) -> tuple[Share, Share]:
    bob = NextcloudClient(double.url, "bob", "Correct-Horse-7", timeout=5)
    bob.upload("devoir.pdf", b"%PDF")
    bob.upload("notes.txt", b"notes")
    return bob.create_public_link("devoir.pdf", password=password), bob.create_public_link(
        "notes.txt"
    )


@pytest.mark.parametrize("password", [None, "Secret-Link-9"], ids=["open", "password"])
def test_link_of_another_account_is_taken_down_as_its_owner(
    service: Service,
    mod: moderation.ModerationClient,
    nextcloud: NextcloudClient,
    double: NextcloudApiDouble,
    occ: OccDouble,
    owners: moderation.OccOwnerAccess,
    password: str | None,
) -> None:
    theirs, other = bobs_links(double, password)
    reference = submit_report(service, f"{HOST}/s/{theirs.token}")
    # A password-protected link hides its owner: the moderator names it.
    given = "bob" if password else None

    done = moderation.takedown(
        mod, nextcloud, reference, by="mod.dupont", owners=owners, owner=given
    )

    assert not nextcloud.public_link_active(str(theirs.token))
    assert nextcloud.public_link_active(str(other.token))  # bob's other link stays
    assert (done.owner, done.share_ids, done.paths) == ("bob", (theirs.id,), ("/devoir.pdf",))
    [decision] = mod.get_report(reference).decisions
    assert (decision.action, decision.share_ids) == ("takedown", (theirs.id,))
    assert "share of bob" in decision.note
    # The app password used for it was deleted: bob keeps none, occ made exactly one.
    assert double.app_passwords["bob"] == set()
    assert [c[0] for c in occ.calls].count("user:auth-tokens:add") == 1


def test_link_another_account_made_of_the_owners_file_is_taken_down(
    service: Service,
    mod: moderation.ModerationClient,
    nextcloud: NextcloudClient,
    double: NextcloudApiDouble,
    owners: moderation.OccOwnerAccess,
) -> None:
    # carol made a public link of bob's file (a reshare): the link's owner-id is bob, the
    # file's owner, and bob's listing shows carol's link only with reshares=true.
    theirs, _ = bobs_links(double)
    NextcloudClient(double.url, double.admin_user, double.admin_password).create_user(
        "carol", "Correct-Horse-8"
    )
    double.shares[int(theirs.id)].initiator = "carol"
    reference = submit_report(service, f"{HOST}/s/{theirs.token}")

    done = moderation.takedown(mod, nextcloud, reference, by="mod.dupont", owners=owners)

    assert (done.owner, done.share_ids) == ("bob", (theirs.id,))
    assert not nextcloud.public_link_active(str(theirs.token))


@pytest.mark.parametrize(
    ("owner", "refusal"),
    [
        # A password-protected link hides its owner: the moderator must name it.
        (None, r"password protected.*--owner"),
        ("nobody", r"no Nextcloud account|does not exist"),
    ],
    ids=["owner-hidden", "owner-unknown"],
)
def test_link_of_another_account_without_its_owner_is_not_recorded(
    service: Service,
    mod: moderation.ModerationClient,
    nextcloud: NextcloudClient,
    double: NextcloudApiDouble,
    owners: moderation.OccOwnerAccess,
    owner: str | None,
    refusal: str,
) -> None:
    theirs, _ = bobs_links(double, "Secret-Link-9")
    reference = submit_report(service, f"{HOST}/s/{theirs.token}")

    with pytest.raises(EducloudError, match=refusal):
        moderation.takedown(mod, nextcloud, reference, by="mod.dupont", owners=owners, owner=owner)

    assert nextcloud.public_link_active(str(theirs.token))
    assert mod.get_report(reference).decisions == ()
    assert double.app_passwords.get("bob", set()) == set()


def test_dry_run_names_the_owner_and_creates_no_app_password(
    service: Service,
    mod: moderation.ModerationClient,
    nextcloud: NextcloudClient,
    double: NextcloudApiDouble,
    occ: OccDouble,
    owners: moderation.OccOwnerAccess,
) -> None:
    theirs, _ = bobs_links(double)
    reference = submit_report(service, f"{HOST}/s/{theirs.token}")
    before = shares(double)

    planned = moderation.takedown(
        mod, nextcloud, reference, by="mod.dupont", owners=owners, dry_run=True
    )

    assert (planned.dry_run, planned.owner) == (True, "bob")
    assert shares(double) == before
    assert occ.calls == []
    assert mod.get_report(reference).status == "open"


def test_dismissed_report_is_taken_down_only_with_reopen(
    service: Service, mod: moderation.ModerationClient, nextcloud: NextcloudClient, double
) -> None:
    reported = nextcloud.create_public_link("photos.jpg")
    reference = submit_report(service, f"{HOST}/s/{reported.token}")
    moderation.dismiss(mod, reference, by="mod.a", note="rien d'illicite")

    with pytest.raises(moderation.ModerationError, match=r"dismissed by mod\.a"):
        moderation.takedown(mod, nextcloud, reference, by="mod.b")
    assert (SHARE_LINK, "photos.jpg", reported.token) in shares(double)

    moderation.takedown(mod, nextcloud, reference, by="mod.b", reopen=True)
    assert [d.action for d in mod.get_report(reference).decisions] == ["dismiss", "takedown"]
    assert not any(t == SHARE_LINK for t, _, _ in shares(double))


def test_token_is_read_from_the_environment_only(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-the-file\n")

    assert moderation.token_from_env({moderation.TOKEN_ENV: "direct"}) == "direct"
    assert moderation.token_from_env({moderation.TOKEN_FILE_ENV: str(token_file)}) == (
        "from-the-file"
    )
    with pytest.raises(moderation.ModerationError, match="never taken from the command line"):
        moderation.token_from_env({})


def test_cli_takedown_disables_the_link_and_prints_one_line(
    service: Service, nextcloud: NextcloudClient, double: NextcloudApiDouble, monkeypatch
) -> None:
    reported = nextcloud.create_public_link("photos.jpg")
    reference = submit_report(service, f"{HOST}/s/{reported.token}")
    monkeypatch.setenv(moderation.TOKEN_ENV, service.token)
    monkeypatch.setenv("EDUCLOUD_NEXTCLOUD_PASSWORD", double.admin_password)
    runner = CliRunner()
    common = ["--url", service.api, "--by", "mod.cli"]

    dry = runner.invoke(
        app,
        ["moderation", "takedown", reference, *common, "--nextcloud-url", double.url, "--dry-run"],
    )
    done = runner.invoke(
        app, ["moderation", "takedown", reference, *common, "--nextcloud-url", double.url]
    )
    listed = runner.invoke(app, ["moderation", "list", "--url", service.api, "--status", "all"])

    assert dry.exit_code == 0, dry.output
    assert "would disable" in dry.output
    assert done.exit_code == 0, done.output
    assert (
        f"{reference}: disabled share {reported.id} (/photos.jpg); takedown recorded by mod.cli"
        in done.output
    )
    assert reference in listed.output and "taken_down" in listed.output
    assert not any(s.token == reported.token for s in double.shares.values())


def test_cli_takedown_of_another_account_acts_as_the_owner_with_an_inventory(
    service: Service,
    nextcloud: NextcloudClient,
    double: NextcloudApiDouble,
    occ: OccDouble,
    monkeypatch,
    tmp_path: Path,
) -> None:
    theirs, _ = bobs_links(double)
    reference = submit_report(service, f"{HOST}/s/{theirs.token}")
    monkeypatch.setenv(moderation.TOKEN_ENV, service.token)
    monkeypatch.setenv("EDUCLOUD_NEXTCLOUD_PASSWORD", double.admin_password)
    # occ over SSH to the inventory's Nextcloud host is the double's here.
    inventories: list[Path] = []

    def from_inventory(inventory: Path) -> tuple[OccDouble, str]:
        inventories.append(inventory)
        return occ, double.url

    monkeypatch.setattr(SshOcc, "from_inventory", staticmethod(from_inventory))
    command = ["moderation", "takedown", reference, "--url", service.api, "--by", "mod.cli"]
    command += ["--nextcloud-url", double.url]

    without = CliRunner().invoke(app, command)
    done = CliRunner().invoke(app, [*command, "--inventory", str(tmp_path / "lab")])

    assert without.exit_code == 2
    assert "Give --inventory" in without.output
    assert done.exit_code == 0, done.output
    assert f"disabled share {theirs.id} (/devoir.pdf) of bob; takedown recorded" in done.output
    assert inventories == [tmp_path / "lab"]


def test_cli_refuses_a_wrong_token(service: Service, monkeypatch) -> None:
    monkeypatch.setenv(moderation.TOKEN_ENV, "not-the-token")

    result = CliRunner().invoke(app, ["moderation", "list", "--url", service.api])

    assert result.exit_code == 2
    assert "error: GET reports: HTTP 401" in result.output


# -- what a report holds is shown as data, never markup or terminal sequences (C9) ------

MARKUP_LINKS = (
    f"{HOST}/s/Xk4pQ9zT2bLm?[/]",
    f"{HOST}/s/Xk4pQ9zT2bLm?[link=https://evil]x[/link]",
    f"{HOST}/s/Xk4pQ9zT2bLm?[bold]gras[/bold]",
)
# Stored before the form refused them (or written by anything but the form).
HOSTILE_LINK = f"{HOST}/s/Xk4p\x1b[2J\x1b]8;;https://evil\x07x\r\x9b31m\u202egpj.exe"
HOSTILE_SHOWN = f"{HOST}/s/Xk4p\\x1b[2J\\x1b]8;;https://evil\\x07x\\x0d\\x9b31m\\u202egpj.exe"
RAW_CONTROLS = ("\x1b", "\x07", "\r", "\x9b", "\u202e")


@pytest.fixture
def wide_terminal(monkeypatch) -> None:
    """The CLI's console as on a wide terminal: one table row per line, a link shows whole
    (whatever TERM and COLUMNS the tests run with)."""
    from rich.console import Console

    from educloud.cli import moderation as moderation_cli

    monkeypatch.setattr(moderation_cli, "console", Console(width=400))
    monkeypatch.setattr(moderation_cli, "err_console", Console(width=400, stderr=True))


def _wide(runner_args: list[str]) -> Result:
    return CliRunner().invoke(app, runner_args)


@pytest.mark.usefixtures("wide_terminal")
def test_cli_list_shows_markup_in_links_as_it_was_stored(service: Service, monkeypatch) -> None:
    for link in MARKUP_LINKS:
        submit_report(service, link)
    monkeypatch.setenv(moderation.TOKEN_ENV, service.token)

    listed = _wide(["moderation", "list", "--url", service.api])

    assert listed.exit_code == 0, listed.output
    for link in MARKUP_LINKS:
        assert link in listed.output


@pytest.mark.usefixtures("wide_terminal")
def test_cli_never_prints_a_reports_control_characters(service: Service, monkeypatch) -> None:
    reference = submit_report(service, f"{HOST}/s/Xk4pQ9zT2bLm")
    with service.db() as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE reports SET link = %s, description = %s WHERE id = %s",
            (HOSTILE_LINK, "ligne 1\r\n\x1b[31mrouge\u2028[bold]fin", reference),
        )
    monkeypatch.setenv(moderation.TOKEN_ENV, service.token)
    common = ["--url", service.api]

    listed = _wide(["moderation", "list", *common])
    shown = _wide(["moderation", "show", reference, *common])
    as_json = _wide(["moderation", "show", reference, *common, "--json"])

    for result in (listed, shown, as_json):
        assert result.exit_code == 0, result.output
        assert not any(c in result.output for c in RAW_CONTROLS), repr(result.output)
    assert HOSTILE_SHOWN in listed.output
    assert f"link: {HOSTILE_SHOWN}" in shown.output
    assert "  ligne 1\n  \\x1b[31mrouge\\u2028[bold]fin\n" in shown.output
    assert json.loads(as_json.output)["link"] == HOSTILE_LINK  # JSON escapes decode back


@pytest.mark.usefixtures("wide_terminal")
def test_cli_error_quoting_a_link_prints_it_as_text(service: Service, monkeypatch) -> None:
    link = f"{HOST}/apps/files?[/]&[link=https://evil]x[/link]"
    reference = submit_report(service, link, kind="description")
    monkeypatch.setenv(moderation.TOKEN_ENV, service.token)
    monkeypatch.setenv("EDUCLOUD_NEXTCLOUD_PASSWORD", "unused")

    command = ["moderation", "takedown", reference, "--url", service.api, "--by", "mod"]

    result = _wide([*command, "--nextcloud-url", "http://127.0.0.1:9"])  # never reached

    assert result.exit_code == 2
    assert f"has no public share link ({link})" in result.output
