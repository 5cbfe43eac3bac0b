"""The lab inventory is generated from the lab's state."""

from __future__ import annotations

import yaml

from educloud.lab.inventory import render
from educloud.lab.settings import LabPaths
from educloud.lab.state import HostRecord, LabState


def test_inventory_has_hosts_groups_and_lab_key(tmp_path):
    paths = LabPaths(tmp_path)
    hosts = [HostRecord("edu1", "198.18.0.11", ["keycloak", "postgresql"])]
    inventory = yaml.safe_load(render(paths, hosts))["all"]
    assert inventory["hosts"]["edu1"]["ansible_host"] == "198.18.0.11"
    assert set(inventory["children"]) == {"keycloak", "postgresql"}
    assert inventory["vars"]["ansible_ssh_private_key_file"] == str(paths.ssh_key)
    assert "StrictHostKeyChecking=yes" in inventory["vars"]["ansible_ssh_common_args"]


def test_state_round_trip_and_dynamic_addresses(tmp_path):
    paths = LabPaths(tmp_path)
    state = LabState({"edu1": HostRecord("edu1", "198.18.0.11", [], 1234)})
    state.hosts["m1"] = HostRecord("m1", str(state.allocate_dynamic()), [], None, True)
    state.save(paths)
    again = LabState.load(paths)
    assert again.hosts["m1"].address == "198.18.0.100"
    assert again.allocate_dynamic().exploded == "198.18.0.101"
    assert again.hosts["edu1"].pid == 1234


def test_lab_secrets_live_in_the_lab_and_are_kept(tmp_path, monkeypatch):
    from educloud.lab import secrets

    monkeypatch.setenv("EDUCLOUD_REPO", str(tmp_path / "repo"))
    paths = LabPaths(tmp_path / "lab")
    paths.root.mkdir()
    created = secrets.ensure(paths)
    pairs = {name for pair in secrets.LAB_KEYPAIRS for name in pair}
    assert set(created) == set(secrets.LAB_SECRETS) | pairs
    assert secrets.vault_link().resolve() == secrets.vault_store(paths)
    first = secrets.read(paths)
    assert secrets.ensure(paths) == []  # idempotent: nothing regenerated
    assert secrets.read(paths) == first
    stored = secrets.vault_store(paths).read_text()
    assert stored.startswith("$ANSIBLE_VAULT")
    assert not any(value in stored for value in first.values())
    private, public = (first[name] for name in secrets.LAB_KEYPAIRS[0])
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert public.startswith("ssh-ed25519 ")


def test_a_new_lab_secret_is_added_and_the_others_are_kept(tmp_path, monkeypatch):
    from educloud.lab import secrets

    monkeypatch.setenv("EDUCLOUD_REPO", str(tmp_path / "repo"))
    paths = LabPaths(tmp_path / "lab")
    paths.root.mkdir()
    older = tuple(name for name in secrets.LAB_SECRETS if name != "vault_accounts_client_secret")
    monkeypatch.setattr(secrets, "LAB_SECRETS", older)
    secrets.ensure(paths)
    before = secrets.read(paths)
    monkeypatch.undo()
    monkeypatch.setenv("EDUCLOUD_REPO", str(tmp_path / "repo"))
    assert secrets.ensure(paths) == ["vault_accounts_client_secret"]
    after = secrets.read(paths)
    assert {name: after[name] for name in before} == before


def test_each_topology_gets_its_own_inventory(tmp_path, monkeypatch):
    from educloud.lab import inventory

    monkeypatch.setenv("EDUCLOUD_REPO", str(tmp_path / "repo"))
    (tmp_path / "repo" / "inventories" / "lab-regional").mkdir(parents=True)
    paths = LabPaths(tmp_path / "lab")
    hosts = [
        HostRecord("edu1", "198.18.0.11", ["keycloak"]),
        HostRecord("rkc1", "198.18.0.22", ["keycloak"], variant="regional"),
        HostRecord("mol-x", "198.18.0.100", [], dynamic=True, variant="regional"),
    ]
    written = inventory.write_all(paths, hosts)
    single = yaml.safe_load(written["single"].read_text())["all"]
    regional = yaml.safe_load(written["regional"].read_text())["all"]
    assert list(single["hosts"]) == ["edu1"]
    assert "educloud_private_address" not in single["hosts"]["edu1"]  # unchanged
    assert list(regional["hosts"]) == ["rkc1"]  # temporary hosts never
    assert regional["hosts"]["rkc1"]["educloud_private_address"] == "198.18.0.22"


def test_a_topology_that_clashes_with_the_lab_is_refused(tmp_path):
    import pytest

    from educloud.errors import EducloudError
    from educloud.lab import orchestrate
    from educloud.lab.settings import HostSpec, parse_address

    state = LabState({"edu1": HostRecord("edu1", "198.18.0.11", [])})
    clash = {"rkc1": HostSpec("rkc1", parse_address("198.18.0.11", "t"))}
    with pytest.raises(EducloudError, match="clashes with edu1"):
        orchestrate._check_no_clash(state, clash, "regional")
    orchestrate._check_no_clash(state, {"edu1": HostSpec("edu1", clash["rkc1"].address)}, "single")


def test_unknown_topology_is_refused():
    import pytest

    from educloud.errors import EducloudError
    from educloud.lab.settings import load_topology, topology_file

    with pytest.raises(EducloudError, match="unknown lab topology 'huge'"):
        topology_file("huge")
    specs = load_topology(topology_file("regional"))
    groups = {g for spec in specs for g in spec.groups}
    assert {"load_balancer", "keycloak", "etcd", "postgresql", "redis"} <= groups
    assert sum("keycloak" in s.groups for s in specs) >= 2
    assert sum("etcd" in s.groups for s in specs) == 3
