"""Where `educloud retention` works (educloud.retention.settings): the settings file of a
server, with the command line's directories in place of its own, or an inventory; and
which journal `retention journal verify` reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from educloud.retention import settings
from educloud.retention.settings import SettingsError

SECRET = "data-rights-secret"  # noqa: S105 (a test value)


def _config(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "retention.yml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def _keycloak_section(tmp_path: Path) -> dict[str, str]:
    secret = tmp_path / "client-secret"
    secret.write_text(SECRET + "\n")
    return {
        "url": "https://auth-admin.example.test/",
        "realm": "academie",
        "client_secret_file": str(secret),
    }


def test_the_settings_file_gives_the_directories_unless_the_command_line_does(
    tmp_path: Path,
) -> None:
    config = _config(
        tmp_path,
        {"exports_dir": "/srv/exports", "journal": "/srv/journal.jsonl"},
    )

    own = settings.resolve(config=config, inventory=Path("unused"))
    given = settings.resolve(
        config=config,
        inventory=Path("unused"),
        exports_dir=tmp_path / "exports",
        journal=tmp_path / "journal.jsonl",
    )

    assert (own.exports_dir, own.journal) == (Path("/srv/exports"), Path("/srv/journal.jsonl"))
    assert (given.exports_dir, given.journal) == (tmp_path / "exports", tmp_path / "journal.jsonl")
    assert own.keycloak is None and own.nextcloud is None


def test_the_settings_files_keycloak_is_the_data_rights_client(tmp_path: Path) -> None:
    config = _config(tmp_path, {"keycloak": _keycloak_section(tmp_path)})

    found = settings.resolve(config=config, inventory=Path("unused"))

    assert found.keycloak is not None
    assert found.keycloak.server_url == "https://auth-admin.example.test"
    assert found.keycloak.client_id == "educloud-data-rights"
    assert found.keycloak.client_secret == SECRET
    assert SECRET not in repr(found)
    assert (found.exports_dir, found.journal) == (
        settings.DEFAULT_EXPORTS,
        settings.DEFAULT_JOURNAL,
    )


def test_without_a_settings_file_the_inventory_is_read_with_the_default_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[Path, dict[str, Any]]] = []

    def from_inventory(inventory: Path, **options: Any) -> str:
        asked.append((inventory, options))
        return "settings"

    monkeypatch.setattr(settings, "from_inventory", from_inventory)

    assert settings.resolve(config=None, inventory=Path("inv"), realm="autre") == "settings"
    settings.resolve(
        config=None, inventory=Path("inv"), journal=tmp_path / "j", nextcloud_url="https://nc"
    )

    assert asked[0] == (
        Path("inv"),
        {
            "exports_dir": settings.DEFAULT_EXPORTS,
            "journal": settings.DEFAULT_JOURNAL,
            "realm": "autre",
            "nextcloud_url": None,
        },
    )
    assert asked[1][1]["journal"] == tmp_path / "j"
    assert asked[1][1]["nextcloud_url"] == "https://nc"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("- a list\n", "must be a mapping"),
        ("key: [unclosed\n", "not valid YAML"),
        ({"keycloak": "https://auth"}, "keycloak: must be a mapping"),
        ({"keycloak": {"url": "https://auth"}}, "keycloak: missing realm, client_secret_file"),
        ({"reports": {"url": "https://r", "token_file": "/nonexistent"}}, "cannot read"),
    ],
    ids=["a-list", "bad-yaml", "keycloak-a-string", "keycloak-incomplete", "no-token-file"],
)
def test_a_bad_settings_file_is_refused_in_one_line(
    tmp_path: Path, data: Any, message: str
) -> None:
    with pytest.raises(SettingsError, match=message) as caught:
        settings.resolve(config=_config(tmp_path, data), inventory=Path("unused"))
    assert "\n" not in str(caught.value)


def test_a_missing_settings_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"retention\.yml"):
        settings.resolve(config=tmp_path / "retention.yml", inventory=Path("unused"))


def test_an_empty_secret_file_is_refused(tmp_path: Path) -> None:
    section = _keycloak_section(tmp_path)
    Path(section["client_secret_file"]).write_text("")
    with pytest.raises(SettingsError, match=r"client_secret_file: .* is empty"):
        settings.resolve(config=_config(tmp_path, {"keycloak": section}), inventory=Path("x"))


def test_the_journal_is_the_given_one_else_the_settings_files_else_the_default(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, {"journal": "/srv/journal.jsonl"})

    assert settings.journal_path(tmp_path / "j", config) == tmp_path / "j"
    assert settings.journal_path(None, config) == Path("/srv/journal.jsonl")
    assert settings.journal_path(None, None) == settings.DEFAULT_JOURNAL
    with pytest.raises(SettingsError):
        settings.journal_path(None, tmp_path / "missing.yml")


def test_from_an_inventory_the_events_check_knows_every_declared_realm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from educloud.deployment import model
    from educloud.deployment.inventory import InventoryHost

    declared = model.Deployment(
        inventory=tmp_path / "inv",
        hosts=(InventoryHost("kc1", ("keycloak",), {}),),
        sites=(),
        keycloak_url="https://auth.example.test",
        keycloak_admin_url="https://auth-admin.example.test",
        realms=("academie", "autre"),
        privacy_path="/confidentialite",
    )
    monkeypatch.setattr(model, "load", lambda inventory: declared)
    monkeypatch.setenv("EDUCLOUD_DATA_RIGHTS_CLIENT_SECRET", SECRET)

    found = settings.from_inventory(
        tmp_path / "inv", exports_dir=tmp_path, journal=tmp_path / "j", realm="autre"
    )

    assert found.keycloak is not None and found.keycloak.realm == "autre"
    assert found.realms == ("academie", "autre")


def test_the_settings_files_realm_is_the_only_tenant_realm(tmp_path: Path) -> None:
    found = settings.from_file(_config(tmp_path, {"keycloak": _keycloak_section(tmp_path)}))
    assert found.keycloak is not None and found.keycloak.realm == "academie"
    assert found.realms == ()  # open_stores: the connection's realm, and master
