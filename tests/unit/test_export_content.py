"""Which transport an export's files come through (educloud.portability.content, C8): the
operator's app passwords over WebDAV, else occ over SSH on the inventory's Nextcloud host,
and which CA the HTTPS requests trust. occ and the inventory are recordings here."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from educloud.clients.nextcloud import CA_ENV
from educloud.errors import EducloudError
from educloud.portability import content
from educloud.portability.sources import WebDavContent

NEXTCLOUD = "https://cloud.example.test"


@pytest.fixture(autouse=True)
def _no_ca_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CA_ENV, raising=False)


def _passwords(tmp_path: Path, value: Any) -> Path:
    path = tmp_path / "app-passwords.json"
    path.write_text(value if isinstance(value, str) else json.dumps(value), encoding="utf-8")
    return path


def test_app_passwords_are_read_from_a_json_object(tmp_path: Path) -> None:
    credentials = content.read_app_passwords(_passwords(tmp_path, {"alice": "pw-a", "bob": "pw-b"}))

    with credentials.app_password("bob") as password:
        assert password == "pw-b"  # noqa: S105 (a test value)
    assert "pw-a" not in repr(credentials)


@pytest.mark.parametrize(
    "value",
    ["{not json", ["alice", "pw"], {"alice": None}, {"alice": ""}, {"alice": 12}, "null"],
    ids=["not-json", "a-list", "null-password", "empty-password", "a-number", "null"],
)
def test_app_passwords_that_are_not_an_object_of_strings_are_refused(
    tmp_path: Path, value: Any
) -> None:
    with pytest.raises(EducloudError, match="not a JSON object user -> app password"):
        content.read_app_passwords(_passwords(tmp_path, value))


def test_a_missing_app_passwords_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(EducloudError, match=r"missing\.json: not a JSON object"):
        content.read_app_passwords(tmp_path / "missing.json")


def test_app_passwords_need_nextclouds_url(tmp_path: Path) -> None:
    path = _passwords(tmp_path, {"alice": "pw"})
    with pytest.raises(EducloudError, match="--app-passwords needs --nextcloud-url"):
        content.content_source(tmp_path / "inv", app_passwords=path)


def test_app_passwords_go_over_webdav_without_ssh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_ssh(inventory: Path) -> Any:
        raise AssertionError("no SSH with app passwords")

    monkeypatch.setattr(content.SshOcc, "from_inventory", staticmethod(no_ssh))
    path = _passwords(tmp_path, {"alice": "pw"})

    source = content.content_source(tmp_path / "inv", nextcloud_url=NEXTCLOUD, app_passwords=path)

    assert isinstance(source, WebDavContent)
    assert source.name == "webdav"


class Recorded:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, ca_file: Path | None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.runner = object()
        monkeypatch.setattr(
            content.SshOcc,
            "from_inventory",
            staticmethod(lambda inventory: (self.runner, "https://cloud.from-inventory.test")),
        )
        monkeypatch.setattr(
            content.deployment, "load", lambda inventory: SimpleNamespace(ca_file=ca_file)
        )
        monkeypatch.setattr(content, "nextcloud_content", self.nextcloud_content)

    def nextcloud_content(self, runner: Any, base_url: str, **options: Any) -> str:
        assert runner is self.runner
        self.calls.append({"base_url": base_url, **options})
        return "content source"


def test_over_ssh_nextcloud_is_the_inventorys_and_trusts_the_deployments_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = tmp_path / "ca.pem"
    recorded = Recorded(monkeypatch, ca)

    assert content.content_source(tmp_path / "inv") == "content source"
    content.content_source(tmp_path / "inv", nextcloud_url=NEXTCLOUD, webdav_only=True)

    assert recorded.calls == [
        {"base_url": "https://cloud.from-inventory.test", "verify": str(ca), "webdav_only": False},
        {"base_url": NEXTCLOUD, "verify": str(ca), "webdav_only": True},
    ]


def test_the_ca_of_the_environment_comes_first_then_the_systems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = Recorded(monkeypatch, None)

    content.content_source(tmp_path / "inv")
    monkeypatch.setenv(CA_ENV, "/etc/ssl/educloud-ca.pem")
    content.content_source(tmp_path / "inv")

    assert [call["verify"] for call in recorded.calls] == [True, "/etc/ssl/educloud-ca.pem"]
