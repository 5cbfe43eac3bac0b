"""The bulk import provider `educloud lab up` built for the lab's Keycloak release.

Its jar must be reproducible: a deploy compares the jar's SHA-256 with the one the server
was built with, so a rebuild that changed bytes would rebuild and restart Keycloak.
"""

from __future__ import annotations

import hashlib

import pytest

from educloud.keycloak_provider import build
from educloud.lab import artifacts
from educloud.lab.settings import LabPaths

pytestmark = pytest.mark.lab


def test_lab_provider_is_rebuilt_byte_for_byte(tmp_path):
    paths = LabPaths.default()
    dists = [
        a.file for a in artifacts.load_manifest() if a.file.startswith("keycloak-quarkus-dist-")
    ]
    assert dists, "lab/artifacts.yml lists no Keycloak distribution"
    dist = paths.artifacts / dists[0]
    lab_jar = paths.artifacts / build.jar_name(build.dist_version(dist))
    assert lab_jar.is_file(), "educloud lab up builds the provider next to the archive"
    again = build.build(dist, tmp_path)
    assert (
        hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(lab_jar.read_bytes()).digest()
    )
