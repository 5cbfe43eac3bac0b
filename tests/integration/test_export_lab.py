"""`educloud export` (charter C8) with the lab's live Keycloak: a real account's profile,
read through the admin REST API of a scratch realm, combined with files from the Nextcloud
double (Nextcloud itself is not installed in the lab).

The scratch realm carries the lab realm's user profile, so the educloud attributes are
declared there as in production; it is deleted afterwards.
"""

from __future__ import annotations

import json
import secrets
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from keycloak import KeycloakAdmin
from tests.doubles.nextcloud_api_double import Account, NextcloudApiDouble

from educloud.clients.nextcloud.occ import OccAppPasswords, OccError, SshOcc
from educloud.portability import export
from educloud.portability.sources import (
    StaticCredentials,
    UserMigrationContent,
    WebDavContent,
    user_migration_enabled,
)

pytestmark = pytest.mark.lab

NOW = datetime(2027, 6, 30, 18, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Pupil:
    username: str
    password: str
    group: str


@pytest.fixture
def scratch_realm(kc_admin: KeycloakAdmin, lab_keycloak: Any) -> Iterator[str]:
    name = f"export-{secrets.token_hex(3)}"
    conn = kc_admin.connection
    profile = conn.raw_get(f"admin/realms/{lab_keycloak.realm}/users/profile").json()
    conn.raw_post("admin/realms", data=json.dumps({"realm": name, "enabled": True}))
    try:
        conn.raw_put(f"admin/realms/{name}/users/profile", data=json.dumps(profile))
        yield name
    finally:
        conn.raw_delete(f"admin/realms/{name}")


@pytest.fixture
def pupil(kc_admin: KeycloakAdmin, scratch_realm: str) -> Pupil:
    conn = kc_admin.connection
    base = f"admin/realms/{scratch_realm}"
    password = secrets.token_urlsafe(18) + "aA1!"
    group = "classe-3b"
    conn.raw_post(f"{base}/groups", data=json.dumps({"name": group}))
    for username in ("eleve0001", "eleve0002"):
        conn.raw_post(
            f"{base}/users",
            data=json.dumps(
                {
                    "username": username,
                    "firstName": "Léa",
                    "lastName": "Élève",
                    "email": f"{username}@educloud.test",
                    "enabled": True,
                    "attributes": {"educloud_profile": ["pupil"], "educloud_login": ["local"]},
                    "credentials": [{"type": "password", "value": password, "temporary": False}],
                }
            ),
        )
    user_id = conn.raw_get(f"{base}/users", username="eleve0001", exact="true").json()[0]["id"]
    group_id = conn.raw_get(f"{base}/groups", search=group).json()[0]["id"]
    conn.raw_put(f"{base}/users/{user_id}/groups/{group_id}", data="{}")
    return Pupil("eleve0001", password, group)


@pytest.fixture
def double() -> Iterator[NextcloudApiDouble]:
    with NextcloudApiDouble() as server:
        server.accounts["eleve0001"] = Account("app-password", "Léa Élève")
        server.put_file("eleve0001", "Documents/exposé.odt", "PK\x03\x04 exposé".encode())
        yield server


@pytest.fixture
def sources(
    kc_admin: KeycloakAdmin, scratch_realm: str, double: NextcloudApiDouble
) -> export.ExportSources:
    credentials = StaticCredentials({"eleve0001": "app-password"})
    return export.ExportSources(
        export.KeycloakProfiles(kc_admin, scratch_realm),
        WebDavContent(double.url, credentials, timeout=10),
    )


def test_archive_holds_the_keycloak_profile_without_credentials(
    sources: export.ExportSources, pupil: Pupil, scratch_realm: str, tmp_path: Path
) -> None:
    archive = export.export_user(sources, pupil.username, tmp_path, now=NOW).archive

    with zipfile.ZipFile(archive) as zf:
        profile = json.loads(zf.read("profile.json"))
        everything = b"".join(zf.read(name) for name in zf.namelist())
        document = zf.read("files/Documents/exposé.odt")
    assert {k: profile[k] for k in ("username", "firstName", "lastName", "email", "enabled")} == {
        "username": "eleve0001",
        "firstName": "Léa",
        "lastName": "Élève",
        "email": "eleve0001@educloud.test",
        "enabled": True,
    }
    assert profile["attributes"]["educloud_profile"] == ["pupil"]
    assert profile["groups"] == ["/classe-3b"]
    assert profile["realm"] == scratch_realm
    assert isinstance(profile["createdTimestamp"], int)
    assert profile["created_at"].startswith(str(datetime.now(UTC).year))
    # Whitelisted fields only: no credentials, required actions, federation links, access.
    assert set(profile) == {
        "username", "firstName", "lastName", "email", "emailVerified", "enabled",
        "createdTimestamp", "created_at", "attributes", "groups", "realm",
    }  # fmt: skip
    assert pupil.password.encode() not in everything
    assert document == "PK\x03\x04 exposé".encode()
    assert export.verify_export(archive) == []


def test_group_and_realm_listings_name_the_accounts_to_export(
    sources: export.ExportSources, pupil: Pupil
) -> None:
    profiles = sources.profiles
    assert isinstance(profiles, export.KeycloakProfiles)

    assert list(profiles.group_user_ids(pupil.group)) == ["eleve0001"]
    assert sorted(profiles.all_user_ids()) == ["eleve0001", "eleve0002"]
    assert profiles.count() == 2


def test_unknown_account_or_group_is_an_error_the_user_can_act_on(
    sources: export.ExportSources, pupil: Pupil, tmp_path: Path
) -> None:
    profiles = sources.profiles
    assert isinstance(profiles, export.KeycloakProfiles)

    with pytest.raises(export.ExportError, match="no account nobody"):
        export.export_user(sources, "nobody", tmp_path, now=NOW)
    with pytest.raises(export.ExportError, match="no group 'classe-9z'"):
        list(profiles.group_user_ids("classe-9z"))
    assert list(tmp_path.iterdir()) == []


def test_contract_end_run_exports_the_realm_and_reports_who_has_no_files(
    sources: export.ExportSources, pupil: Pupil, tmp_path: Path
) -> None:
    profiles = sources.profiles
    assert isinstance(profiles, export.KeycloakProfiles)

    run = export.export_many(sources, profiles.all_user_ids(), tmp_path, now=NOW, contract_end=True)

    # The operator's app-password mapping lacks eleve0002: no archive for them, and the
    # run is not COMPLETE (retention would not start counting its 3 months yet). (An
    # account without a Nextcloud account at all gets its profile only: unit tests.)
    assert run.exported == 1
    assert list(run.failed) == ["eleve0002"]
    assert export.verify_export(run.directory / "eleve0001.zip") == []
    assert export.export_kind(run.directory) == "contract_end"
    assert export.export_completed_at(run.directory) is None


def test_cli_exports_a_lab_account_through_the_data_rights_client(
    test_user: Any, tmp_path: Path
) -> None:
    """`educloud export` end to end: the lab realm through the educloud-data-rights
    service client (inventories/lab), Nextcloud's files from the double."""
    from typer.testing import CliRunner

    from educloud.cli.main import app

    passwords = tmp_path / "app-passwords.json"
    passwords.write_text(json.dumps({test_user.username: "app-password"}))
    with NextcloudApiDouble() as server:
        server.accounts[test_user.username] = Account("app-password", test_user.username)
        server.put_file(test_user.username, "devoir.txt", b"mon devoir\n")
        result = CliRunner().invoke(
            app,
            [
                "export",
                "--user",
                test_user.username,
                "--output",
                str(tmp_path / "exports"),
                "--nextcloud-url",
                server.url,
                "--app-passwords",
                str(passwords),
                "--json",
            ],
        )

    assert result.exit_code == 0, (result.output, result.exception)
    summary = json.loads(result.stdout)
    assert (summary["exported"], summary["failed"], summary["kind"]) == (1, {}, "user")
    archive = tmp_path / "exports" / f"{test_user.username}.zip"
    assert export.verify_export(archive) == []
    with zipfile.ZipFile(archive) as zf:
        profile = json.loads(zf.read("profile.json"))
        assert zf.read("files/devoir.txt") == b"mon devoir\n"
    assert profile["groups"] == [f"/{test_user.group}"]
    assert profile["email"] == f"{test_user.username}@educloud.test"


# -- occ over SSH: the paths a real server takes (skipped while the lab has no Nextcloud) --


@pytest.fixture
def nextcloud_occ(lab_keycloak: Any) -> Iterator[tuple[SshOcc, str, str]]:
    """occ on the lab's Nextcloud host, its base URL (pinned to the proxy), and a user."""
    from educloud.netpin import pinned_names
    from educloud.paths import inventories_dir

    runner, url = SshOcc.from_inventory(inventories_dir() / "lab")
    try:
        users = json.loads(runner.occ(["user:list", "--output=json"]))
    except OccError as exc:
        if "Could not open input file" in str(exc):
            pytest.skip("Nextcloud not installed")
        raise
    name = url.split("//", 1)[1].split("/", 1)[0]
    with pinned_names({name: lab_keycloak.proxy_address}):
        yield runner, url, sorted(users)[0]


def test_occ_app_password_reads_the_users_files_and_is_deleted_afterwards(
    nextcloud_occ: tuple[SshOcc, str, str], lab_keycloak: Any
) -> None:
    from educloud.clients.nextcloud import NextcloudAuthError, NextcloudClient

    runner, url, user = nextcloud_occ
    tokens = OccAppPasswords(runner)
    before = tokens._token_ids(user)

    with tokens.app_password(user) as password:
        client = NextcloudClient(url, user, password, verify=lab_keycloak.ca_file)
        client.list_folder()

    assert tokens._token_ids(user) == before
    with pytest.raises(NextcloudAuthError):
        NextcloudClient(url, user, password, verify=lab_keycloak.ca_file).list_folder()


def test_user_migration_export_is_embedded_as_nextclouds_own_archive(
    nextcloud_occ: tuple[SshOcc, str, str], tmp_path: Path
) -> None:
    runner, _url, user = nextcloud_occ
    if not user_migration_enabled(runner):
        pytest.skip("the user_migration app is not enabled")

    # Read as export_user reads: each item's chunks before the next item (the remote
    # copy is removed once the iterator ends).
    items = UserMigrationContent(runner).items(user)
    item = next(items)
    fetched = tmp_path / "user_migration.zip"
    with fetched.open("wb") as out:
        for chunk in item.chunks():
            out.write(chunk)

    assert next(items, None) is None
    assert item.path.startswith(f"nextcloud/{user}_") and item.path.endswith(".zip")
    with zipfile.ZipFile(fetched) as zf:
        assert zf.testzip() is None
