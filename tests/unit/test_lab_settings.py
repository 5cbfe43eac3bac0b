"""The lab topology is validated before anything changes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from educloud.errors import EducloudError
from educloud.lab import image
from educloud.lab.settings import load_topology
from educloud.paths import repo_root


def _topology(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topology.yml"
    path.write_text(text)
    return path


def test_reads_hosts_and_groups(tmp_path):
    path = _topology(tmp_path, "hosts:\n  edu1: {address: 198.18.0.11, groups: [keycloak]}\n")
    (spec,) = load_topology(path)
    assert spec.name == "edu1"
    assert str(spec.address) == "198.18.0.11"
    assert spec.groups == ("keycloak",)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("edu1: {address: 10.0.0.5}", "not a usable lab address"),
        ("edu1: {address: 198.18.0.1}", "not a usable lab address"),
        ("edu1: {address: 198.18.0.254}", "not a usable lab address"),
        ("edu1: {address: nope}", "not an IPv4 address"),
        ("edu1: {address: 198.18.0.150}", "temporary hosts"),
        ("Bad_Name: {address: 198.18.0.12}", "invalid"),
        ("averyveryverylongname: {address: 198.18.0.12}", "invalid"),
        ("a: {address: 198.18.0.12}\n  b: {address: 198.18.0.12}", "used by another host"),
        ("edu1: {address: 198.18.0.12, groups: keycloak}", "list of group names"),
    ],
)
def test_rejects_bad_topology(tmp_path, body, message):
    path = _topology(tmp_path, "hosts:\n  " + body + "\n")
    with pytest.raises(EducloudError, match=message):
        load_topology(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(EducloudError, match="not found"):
        load_topology(tmp_path / "absent.yml")


def test_repository_topology_is_valid():
    assert load_topology()


def test_lab_image_holds_the_packages_roles_common_installs() -> None:
    """The image is rebuilt when roles/common's package list changes (it is in the digest),
    and the role's packages are installed with apt-get, Recommends included."""
    recipe = image.default_recipe("http://mirror.invalid/debian")
    defaults = yaml.safe_load(
        (repo_root() / "roles/common/defaults/main.yml").read_text(encoding="utf-8")
    )
    assert recipe.preinstalled == tuple(defaults["common_packages"])
    other = dataclasses.replace(recipe, preinstalled=(*recipe.preinstalled, "netbase"))
    assert other.digest() != recipe.digest()
