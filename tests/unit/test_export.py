"""educloud.portability.export (charter C8) against NextcloudApiDouble, a double of Nextcloud.

The Nextcloud side is the double (a real HTTP server on 127.0.0.1, tests/doubles); profiles
come from a plain in-memory ProfileSource here (the Keycloak one is proven against the lab's
live Keycloak in tests/integration/test_export_lab.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.doubles.nextcloud_api_double import Account, NextcloudApiDouble
from tests.doubles.occ_double import OccDouble
from typer.testing import CliRunner

from educloud.cli.main import app
from educloud.clients.nextcloud.occ import LocalOcc, OccAppPasswords, OccError
from educloud.paths import policies_dir
from educloud.portability import export
from educloud.portability.sources import (
    StaticCredentials,
    UserMigrationContent,
    WebDavContent,
    user_migration_enabled,
)

NOW = datetime(2027, 6, 30, 18, 0, tzinfo=UTC)
CHUNK = 64 * 1024
ICS = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Sabre//Sabre VObject 4.5.6//EN\r\n"
    b"BEGIN:VEVENT\r\nUID:conseil-de-classe\r\nDTSTART:20270612T160000Z\r\n"
    b"SUMMARY:Conseil de classe 3e B\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
VCF = (
    b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:prof-maths\r\nFN:Jeanne Durand\r\n"
    b"EMAIL:jeanne.durand@educloud.test\r\nEND:VCARD\r\n"
)
BIG = os.urandom(3 * CHUNK + 123)  # several chunks, and a partial last one


class Profiles:
    """A ProfileSource from a dict (no directory behind it)."""

    def __init__(self, profiles: dict[str, dict[str, Any]]) -> None:
        self.profiles = profiles

    def profile(self, user_id: str) -> dict[str, Any]:
        if user_id not in self.profiles:
            raise export.ExportError(f"no account {user_id}")
        return self.profiles[user_id]


USERS = {
    "alice": {"username": "alice", "firstName": "Alice", "groups": ["/classe-3b"]},
    "bob": {"username": "bob", "firstName": "Bob", "groups": []},
}


@pytest.fixture
def double() -> Iterator[NextcloudApiDouble]:
    with NextcloudApiDouble() as server:
        for user_id in USERS:
            server.accounts[user_id] = Account(f"app-password-{user_id}", user_id)
        server.put_file("alice", "Documents/Rédaction finale.odt", b"PK\x03\x04 odt bytes")
        server.put_file("alice", "Documents/Photos/sortie.jpg", BIG)
        server.put_file("alice", "notes.txt", b"")
        server.add_calendar("alice", "personal", ICS, "Personnel")
        server.add_address_book("alice", "contacts", VCF, "Contacts")
        server.put_file("bob", "devoir.txt", b"devoir de bob\n")
        yield server


def sources_for(double: NextcloudApiDouble, chunk_size: int = CHUNK) -> export.ExportSources:
    credentials = StaticCredentials({u: f"app-password-{u}" for u in USERS})
    content = WebDavContent(double.url, credentials, timeout=10, chunk_size=chunk_size)
    return export.ExportSources(Profiles(USERS), content)


@pytest.fixture
def sources(double: NextcloudApiDouble) -> export.ExportSources:
    return sources_for(double)


def members(archive: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(archive) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def rewrite(archive: Path, change: Callable[[dict[str, bytes]], None]) -> None:
    """Rebuild the archive with its members changed by `change` (a well-formed ZIP)."""
    content = members(archive)
    change(content)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in content.items():
            zf.writestr(name, data)


def test_archive_holds_the_users_data_byte_for_byte(
    sources: export.ExportSources, tmp_path: Path
) -> None:
    result = export.export_user(sources, "alice", tmp_path, now=NOW)

    content = members(result.archive)
    assert result.archive == tmp_path / "alice.zip"
    assert result.archive.stat().st_mode & 0o777 == 0o600  # personal data
    assert set(content) == {
        "manifest.json",
        "profile.json",
        "files/Documents/Rédaction finale.odt",
        "files/Documents/Photos/sortie.jpg",
        "files/notes.txt",
        # Only the user's own collections: not the scheduling inbox/outbox, the trash
        # bin, or the server-generated address book of every account.
        "calendars/personal.ics",
        "contacts/contacts.vcf",
    }
    assert content["files/Documents/Photos/sortie.jpg"] == BIG
    assert content["files/Documents/Rédaction finale.odt"] == b"PK\x03\x04 odt bytes"
    assert content["files/notes.txt"] == b""
    assert content["calendars/personal.ics"] == ICS
    assert content["contacts/contacts.vcf"] == VCF
    assert json.loads(content["profile.json"]) == USERS["alice"]


def test_manifest_gives_size_and_sha256_of_every_other_member(
    sources: export.ExportSources, tmp_path: Path
) -> None:
    archive = export.export_user(sources, "alice", tmp_path, now=NOW).archive

    content = members(archive)
    manifest = json.loads(content.pop("manifest.json"))
    assert manifest["format"] == "educloud-export/1"
    assert manifest["user_id"] == "alice"
    assert manifest["created_at"] == "2027-06-30T18:00:00+00:00"
    assert manifest["educloud_version"]
    assert {f["path"]: (f["size"], f["sha256"]) for f in manifest["files"]} == {
        name: (len(data), hashlib.sha256(data).hexdigest()) for name, data in content.items()
    }
    assert export.verify_export(archive) == []


def test_big_file_is_read_in_chunks(
    double: NextcloudApiDouble, sources: export.ExportSources, tmp_path: Path
) -> None:
    double.seen.clear()

    export.export_user(sources, "alice", tmp_path, now=NOW)

    downloads = [r for r in double.seen if r.method == "GET" and "sortie.jpg" in r.path]
    assert len(downloads) == 1  # one streamed request, not one per chunk or a retry


def test_export_reads_as_the_user_not_as_an_admin(
    double: NextcloudApiDouble, tmp_path: Path
) -> None:
    wrong = StaticCredentials({"alice": "not-her-password"})
    sources = export.ExportSources(Profiles(USERS), WebDavContent(double.url, wrong))

    with pytest.raises(export.EducloudError, match="refused the credentials of alice"):
        export.export_user(sources, "alice", tmp_path, now=NOW)

    assert list(tmp_path.iterdir()) == []  # neither an archive nor a torn .part


@pytest.fixture
def archive(sources: export.ExportSources, tmp_path: Path) -> Path:
    return export.export_user(sources, "alice", tmp_path / "out", now=NOW).archive


def flip_byte(content: dict[str, bytes]) -> None:
    data = bytearray(content["files/Documents/Photos/sortie.jpg"])
    data[len(data) // 2] ^= 0x01
    content["files/Documents/Photos/sortie.jpg"] = bytes(data)


def edit_manifest(content: dict[str, bytes]) -> None:
    manifest = json.loads(content["manifest.json"])
    for entry in manifest["files"]:
        if entry["path"] == "files/notes.txt":
            entry["sha256"] = hashlib.sha256(b"something else").hexdigest()
    content["manifest.json"] = json.dumps(manifest).encode()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (flip_byte, "sortie.jpg: SHA-256"),
        (lambda c: c.pop("files/notes.txt"), "notes.txt: in the manifest but missing"),
        (lambda c: c.update({"files/ajout.txt": b"x"}), "ajout.txt: in the archive but not"),
        (edit_manifest, "notes.txt: SHA-256"),
        (lambda c: c.update({"calendars/personal.ics": ICS + b"\r\n"}), "bytes, the manifest"),
        (lambda c: c.pop("manifest.json"), "manifest.json is missing"),
        (lambda c: c.update({"manifest.json": b"{not json"}), "not an educloud-export/1"),
    ],
    ids=[
        "flipped-byte",
        "removed-file",
        "extra-file",
        "edited-manifest",
        "grown-file",
        "no-manifest",
        "bad-manifest",
    ],
)
def test_altered_archive_does_not_verify(
    archive: Path, change: Callable[[dict[str, bytes]], Any], expected: str
) -> None:
    assert export.verify_export(archive) == []

    rewrite(archive, change)

    problems = export.verify_export(archive)
    assert any(expected in problem for problem in problems), problems


def test_corrupted_zip_bytes_do_not_verify(archive: Path) -> None:
    data = bytearray(archive.read_bytes())
    # The middle of the archive is inside the big file's (incompressible) data.
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))

    problems = export.verify_export(archive)

    assert any("sortie.jpg" in p for p in problems), problems


def test_member_stored_twice_does_not_verify(archive: Path) -> None:
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("files/notes.txt", b"")  # same bytes: only the duplicate is wrong

    assert export.verify_export(archive) == ["files/notes.txt: stored twice in the archive"]


def test_truncated_archive_does_not_verify(archive: Path) -> None:
    archive.write_bytes(archive.read_bytes()[:-100])

    assert export.verify_export(archive) != []


def test_resume_skips_finished_users_and_redoes_a_torn_one(
    double: NextcloudApiDouble, sources: export.ExportSources, tmp_path: Path
) -> None:
    first = export.export_many(sources, ["alice", "bob"], tmp_path, now=NOW)
    assert (first.exported, first.already_done, first.redone_torn) == (2, 0, 0)
    alice = (tmp_path / "alice.zip").stat()
    # bob's export was killed half-way: a torn temporary archive, no final one.
    (tmp_path / "bob.zip").replace(tmp_path / "bob.zip.part")
    with (tmp_path / "bob.zip.part").open("r+b") as torn:
        torn.truncate(200)
    double.seen.clear()
    events: list[export.ExportEvent] = []

    again = export.export_many(sources, ["alice", "bob"], tmp_path, now=NOW, progress=events.append)

    assert (again.exported, again.already_done, again.redone_torn) == (0, 1, 1)
    assert [(e.user_id, e.outcome, e.done, e.total) for e in events] == [
        ("alice", "already_done", 1, 2),
        ("bob", "redone_torn", 2, 2),
    ]
    assert (tmp_path / "alice.zip").stat().st_mtime_ns == alice.st_mtime_ns
    assert not any("/alice/" in r.path for r in double.seen)  # alice not fetched again
    assert export.verify_export(tmp_path / "bob.zip") == []
    assert not list(tmp_path.glob("*.part"))


def test_a_failure_half_way_leaves_no_archive_and_is_redone(
    sources: export.ExportSources, tmp_path: Path
) -> None:
    class Failing:
        name = "webdav"

        def items(self, user_id: str) -> Iterator[export.ExportItem]:
            yield from list(sources.content.items(user_id))[:1]
            raise export.ExportError("Nextcloud went away")

    broken = export.ExportSources(sources.profiles, Failing())

    run = export.export_many(broken, ["alice", "bob"], tmp_path, now=NOW)

    assert run.failed == {"alice": "Nextcloud went away", "bob": "Nextcloud went away"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["EXPORT-KIND"]
    retry = export.export_many(sources, ["alice", "bob"], tmp_path, now=NOW)
    assert (retry.exported, retry.failed) == (2, {})


def test_many_users_are_exported_one_at_a_time_from_an_iterator(
    sources: export.ExportSources, tmp_path: Path
) -> None:
    pulled: list[str] = []

    def user_ids() -> Iterator[str]:
        for user_id in ("alice", "bob"):
            # The previous user's archive is finished before the next id is even read.
            assert sorted(p.name for p in tmp_path.glob("*.zip")) == sorted(
                f"{u}.zip" for u in pulled
            )
            pulled.append(user_id)
            yield user_id

    run = export.export_many(sources, user_ids(), tmp_path, now=NOW)

    assert run.exported == 2


def test_contract_end_run_is_marked_for_its_retention_category(
    sources: export.ExportSources, tmp_path: Path
) -> None:
    run = export.export_many(sources, ["alice", "bob"], tmp_path, now=NOW, contract_end=True)

    directory = tmp_path / "contract-end-2027-06-30"
    assert run.directory == directory
    assert (directory / "EXPORT-KIND").read_text() == "contract_end\n"
    assert export.export_kind(directory) == "contract_end"
    assert export.export_completed_at(directory) == NOW
    assert sorted(p.name for p in directory.glob("*.zip")) == ["alice.zip", "bob.zip"]
    category = export.RETENTION_CATEGORIES["contract_end"]
    policy = yaml.safe_load((policies_dir() / "retention.yml").read_text())["categories"]
    assert policy[category]["retention_days"] >= 90  # "3 mois" after the contract ends
    assert (policy[category]["at_expiry"], policy[category]["enforced_by"]) == (
        "erase",
        "retention",
    )


def test_ordinary_exports_are_marked_user(sources: export.ExportSources, tmp_path: Path) -> None:
    export.export_many(sources, ["bob"], tmp_path, now=NOW)

    assert export.export_kind(tmp_path) == "user"
    assert export.RETENTION_CATEGORIES["user"] == "exports"


def test_unfinished_contract_end_run_resumes_in_its_directory_the_next_day(
    sources: export.ExportSources, tmp_path: Path
) -> None:
    failing = export.ExportSources(Profiles({"alice": USERS["alice"]}), sources.content)
    first = export.export_many(failing, ["alice", "bob"], tmp_path, now=NOW, contract_end=True)
    assert list(first.failed) == ["bob"]
    assert export.export_completed_at(first.directory) is None

    next_day = datetime(2027, 7, 1, 9, 0, tzinfo=UTC)
    second = export.export_many(
        sources, ["alice", "bob"], tmp_path, now=next_day, contract_end=True
    )

    assert second.directory == first.directory
    assert (second.already_done, second.exported) == (1, 1)
    assert export.export_completed_at(second.directory) == next_day


def test_directory_of_another_kind_is_refused(
    sources: export.ExportSources, tmp_path: Path
) -> None:
    (tmp_path / "EXPORT-KIND").write_text("contract_end\n")

    with pytest.raises(export.ExportError, match="holds contract_end exports"):
        export.export_many(sources, ["bob"], tmp_path, now=NOW)


def test_user_id_that_would_escape_the_directory_is_refused(
    sources: export.ExportSources, tmp_path: Path
) -> None:
    with pytest.raises(export.ExportError, match="cannot name an archive"):
        export.export_user(sources, "../bob", tmp_path, now=NOW)


def test_export_memory_stays_bounded_for_a_large_file(
    double: NextcloudApiDouble, tmp_path: Path
) -> None:
    size = 50 * 1024 * 1024
    double.put_file("bob", "video.mp4", os.urandom(size))  # held by the double, not measured
    sources = sources_for(double, chunk_size=1024 * 1024)

    tracemalloc.start()
    try:
        export.export_user(sources, "bob", tmp_path, now=NOW)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB for a 50 MiB file"
    assert export.verify_export(tmp_path / "bob.zip") == []
    with zipfile.ZipFile(tmp_path / "bob.zip") as zf:
        assert zf.getinfo("files/video.mp4").file_size == size


# -- the command line --------------------------------------------------------------------


def test_dry_run_lists_who_would_be_exported_and_writes_nothing(
    sources: export.ExportSources, tmp_path: Path
) -> None:
    done = tmp_path / "done"
    export.export_user(sources, "alice", done, now=NOW)
    before = sorted(p.name for p in done.iterdir())
    fresh = tmp_path / "fresh"

    result = CliRunner().invoke(
        app,
        ["export", "--user", "alice", "--user", "bob", "--output", str(done), "--dry-run"],
    )
    fresh_result = CliRunner().invoke(
        app, ["export", "--user", "bob", "--output", str(fresh), "--dry-run", "--json"]
    )

    assert result.exit_code == 0, result.output
    assert "already_done alice" in result.output
    assert "to_export    bob" in result.output
    assert sorted(p.name for p in done.iterdir()) == before
    assert fresh_result.exit_code == 0, fresh_result.output
    assert json.loads(fresh_result.stdout)["users"] == [{"user_id": "bob", "state": "to_export"}]
    assert not fresh.exists()


def test_cli_needs_exactly_one_selection() -> None:
    result = CliRunner().invoke(app, ["export", "--user", "alice", "--all", "--dry-run"])

    assert result.exit_code == 2
    assert "exactly one of" in result.output


def test_cli_verify_passes_a_good_archive_and_fails_a_corrupted_one(archive: Path) -> None:
    ok = CliRunner().invoke(app, ["export", "verify", str(archive)])
    rewrite(archive, flip_byte)
    bad = CliRunner().invoke(app, ["export", "verify", str(archive), "--json"])

    assert ok.exit_code == 0, ok.output
    assert "verified" in ok.output
    assert bad.exit_code == 1
    problems = json.loads(bad.stdout)["archives"][str(archive)]
    assert any("sortie.jpg: SHA-256" in p for p in problems)


# -- the occ paths (occ itself is a double here: tests/doubles/occ_double.py) ------------


@pytest.fixture
def occ(double: NextcloudApiDouble, tmp_path: Path) -> OccDouble:
    host = tmp_path / "nextcloud-host"
    host.mkdir()
    return OccDouble(double, host)


def occ_sources(double: NextcloudApiDouble, content: export.ContentSource) -> export.ExportSources:
    profiles = Profiles({**USERS, "carol": {"username": "carol", "groups": []}})
    return export.ExportSources(profiles, content)


def test_short_lived_app_password_reads_the_files_and_is_deleted_after(
    double: NextcloudApiDouble, occ: OccDouble, tmp_path: Path
) -> None:
    content = WebDavContent(double.url, OccAppPasswords(occ), timeout=10)

    archive = export.export_user(occ_sources(double, content), "alice", tmp_path, now=NOW)

    assert members(archive.archive)["files/Documents/Photos/sortie.jpg"] == BIG
    assert [call[0] for call in occ.calls] == [
        "user:auth-tokens:list",
        "user:auth-tokens:add",
        "user:auth-tokens:list",
        "user:auth-tokens:delete",
    ]
    assert occ.tokens["alice"] == {}
    assert double.app_passwords["alice"] == set()


def test_app_password_is_deleted_when_the_export_fails(
    double: NextcloudApiDouble, occ: OccDouble
) -> None:
    tokens = OccAppPasswords(occ)

    with pytest.raises(RuntimeError), tokens.app_password("alice") as password:
        assert password in double.app_passwords["alice"]
        raise RuntimeError("interrupted")

    assert occ.tokens["alice"] == {}
    assert double.app_passwords["alice"] == set()


def test_account_that_never_used_nextcloud_gets_its_profile_only(
    double: NextcloudApiDouble, occ: OccDouble, tmp_path: Path
) -> None:
    content = WebDavContent(double.url, OccAppPasswords(occ), timeout=10)

    run = export.export_many(occ_sources(double, content), ["carol"], tmp_path, now=NOW)

    assert (run.exported, run.failed) == (1, {})
    assert set(members(tmp_path / "carol.zip")) == {"manifest.json", "profile.json"}


def test_user_migration_export_is_embedded_and_its_copy_removed(
    double: NextcloudApiDouble, occ: OccDouble, tmp_path: Path
) -> None:
    occ.apps.add("user_migration")
    assert user_migration_enabled(occ)
    sources = occ_sources(double, UserMigrationContent(occ))

    result = export.export_user(sources, "alice", tmp_path / "out", now=NOW)

    content = members(result.archive)
    (nested,) = (name for name in content if name.startswith("nextcloud/alice_"))
    assert set(content) == {"manifest.json", "profile.json", nested}
    assert result.source == "user_migration"
    nested_path = tmp_path / "nested.zip"
    nested_path.write_bytes(content[nested])
    with zipfile.ZipFile(nested_path) as zf:
        assert zf.read("files/files/Documents/Photos/sortie.jpg") == BIG
    assert export.verify_export(result.archive) == []
    assert list(occ.host_dir.iterdir()) == []  # the server's copy is gone
    carol = export.export_user(sources, "carol", tmp_path / "out", now=NOW)
    assert set(members(carol.archive)) == {"manifest.json", "profile.json"}


def test_user_migration_is_used_only_where_enabled(occ: OccDouble) -> None:
    assert not user_migration_enabled(occ)


def test_local_occ_runs_as_nextcloud_account_directly_or_switches_from_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The retention unit runs as Nextcloud's account (NoNewPrivileges: no sudo, no runuser).
    me = pwd.getpwuid(os.geteuid()).pw_name
    argv = ["php", "/var/www/nextcloud/occ", "status"]

    assert LocalOcc(system_user=me)._remote(argv) == argv
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert LocalOcc(system_user="nextcloud")._remote(argv)[:4] == [
        "runuser", "-u", "nextcloud", "--",
    ]  # fmt: skip
    monkeypatch.setattr(os, "geteuid", lambda: 64999)  # an account with no name
    with pytest.raises(OccError, match=r"occ must run as nextcloud.*runs as 64999"):
        LocalOcc(system_user="nextcloud").occ(["status"])
