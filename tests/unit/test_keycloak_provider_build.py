"""Building the bulk import provider: which Keycloak release an archive holds, clear errors.

The build itself needs a Keycloak distribution (about 150 MB): it runs at `educloud lab up`
and in tests/integration/test_keycloak_provider.py, after the lab fetched one.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from educloud.errors import EducloudError
from educloud.keycloak_provider import build


def _zip(path: Path, names: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, b"")
    return path


def test_dist_version_reads_the_release_of_a_keycloak_archive(tmp_path):
    dist = _zip(
        tmp_path / "kc.zip",
        [
            "keycloak-26.7.3/bin/kc.sh",
            "keycloak-26.7.3/lib/lib/main/org.keycloak.keycloak-core-26.7.3.jar",
        ],
    )
    assert build.dist_version(dist) == "26.7.3"
    assert build.jar_name("26.7.3") == "educloud-keycloak-bulk-import-26.7.3.jar"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not a readable zip archive"),
        (b"not a zip", "not a readable zip archive"),
        (["nextcloud/occ"], "not a Keycloak distribution"),
    ],
    ids=["missing", "not-a-zip", "another-archive"],
)
def test_build_refuses_what_is_not_a_keycloak_archive(tmp_path, content, message):
    dist = tmp_path / "dist.zip"
    if isinstance(content, bytes):
        dist.write_bytes(content)
    elif isinstance(content, list):
        _zip(dist, content)
    with pytest.raises(EducloudError, match=message):
        build.build(dist, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_build_names_the_missing_java_compiler(tmp_path, monkeypatch):
    monkeypatch.setattr(build.shutil, "which", lambda tool: None if tool == "javac" else "/bin/x")
    with pytest.raises(EducloudError, match="openjdk-17-jdk-headless"):
        build.build(tmp_path / "kc.zip", tmp_path / "out")
