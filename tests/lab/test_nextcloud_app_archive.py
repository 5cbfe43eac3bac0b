"""An app archive made for another Nextcloud is refused on the lab before anything changes.

Issue #24's break test, on the live lab: the whole nextcloud role runs against edu1 with a
release archive named for Nextcloud 34.0.4 (never fetched: the validation comes first) and
an app archive whose appinfo/info.xml asks for Nextcloud 35 (groupfolders' newest branch).
The run stops with a message naming both, and edu1's Nextcloud, nginx and PHP files are
the same afterwards (a fingerprint of every path, size, mode and mtime, taken as root).
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

import pytest
from tests.lab.lab_shell import lab_playbook, lab_ssh

pytestmark = pytest.mark.lab
HOST = "edu1"
PLAYBOOK = Path(__file__).parent / "playbooks" / "nextcloud_role.yml"
WATCHED = "/var/www/nextcloud /var/lib/nextcloud /etc/nginx /etc/php /etc/educloud"
INFO_XML = """<?xml version="1.0"?>
<info><id>{app}</id><name>{app}</name><version>{version}</version>
<dependencies><nextcloud min-version="{low}" max-version="{high}"/></dependencies></info>
"""


def _app_archive(directory: Path, app: str, version: str, low: str, high: str) -> dict[str, str]:
    """A release archive of `app` in the nextcloud-releases layout, and its record."""
    path = directory / f"{app}-v{version}.tar.gz"
    info = INFO_XML.format(app=app, version=version, low=low, high=high).encode()
    with tarfile.open(path, "w:gz") as archive:
        member = tarfile.TarInfo(f"{app}/appinfo/info.xml")
        member.size = len(info)
        archive.addfile(member, io.BytesIO(info))
    return {"name": app, "url": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _fingerprint() -> str:
    return lab_ssh(
        HOST,
        f"find {WATCHED} -printf '%p %s %m %T@\\n' 2>/dev/null | sort | sha256sum",
    ).split()[0]


def _role(variables: dict[str, object]) -> subprocess.CompletedProcess[str]:
    return lab_playbook(PLAYBOOK, HOST, variables)


def test_an_app_for_another_nextcloud_is_refused_and_nothing_changes(
    lab_hosts: object, tmp_path: Path
) -> None:
    before = _fingerprint()
    result = _role(
        {
            # Named for the release the role installs; never fetched (validation first).
            "nextcloud_archive_url": "http://198.18.0.1:8088/nextcloud-34.0.4.tar.bz2",
            "nextcloud_archive_sha256": "0" * 64,
            "nextcloud_app_archives": [
                _app_archive(tmp_path, "user_migration", "10.4.0", "29", "34"),
                _app_archive(tmp_path, "groupfolders", "23.0.0", "35", "35"),
            ],
        }
    )
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output[-2000:]
    assert "groupfolders 23.0.0 supports Nextcloud 35\N{EN DASH}35" in output, output[-2000:]
    assert "this deployment installs 34.0.4" in output
    assert f"Nothing was changed on {HOST}" in output
    assert "changed=0" in output, output[-1500:]
    assert _fingerprint() == before, f"{HOST} changed although the role refused its input"
