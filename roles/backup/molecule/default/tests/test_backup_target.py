"""Behaviour of the backup_target role on a converged host (testinfra; charter C1, C10).

Run by molecule on mol-bkstore (after mol-backup created its repository) and against an
inventory (tests/run-all.sh: the lab's bak1, after edu1's).
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest

from educloud.hostscope import skip_unless_in_group

GROUP = "backup_target"
PLATFORM = "mol-bkstore"
LEGACY_USER = "educloud-backup"
# Where a secret must never be found on the target.
SEARCHED = ("/srv", "/etc", "/home", "/root", "/var")


@pytest.fixture(autouse=True)
def _backup_target_hosts_only(host: Any) -> None:
    skip_unless_in_group(host.ansible.get_variables(), GROUP, platform=PLATFORM)


def _variables(host: Any) -> dict[str, Any]:
    return host.ansible.get_variables()


def _base(host: Any) -> str:
    return str(_variables(host).get("backup_target_base_dir", "/srv/educloud-backup"))


def _clients(host: Any) -> list[str]:
    clients = _variables(host).get("backup_target_clients", [])
    if isinstance(clients, str):  # an expression in the inventory: Ansible templates it
        answer = host.ansible(
            "ansible.builtin.debug", "msg={{ backup_target_clients }}", check=False
        )
        clients = answer["msg"]
    return [str(c["name"]) for c in clients]


def _repositories(host: Any) -> list[str]:
    repos = f"{_base(host)}/repos"
    return sorted(host.check_output(f"find {repos} -mindepth 1 -maxdepth 1 -type d").split())


def test_each_client_has_its_own_account_forced_to_append_only(host):
    clients = _clients(host)
    assert clients
    repos = host.file(f"{_base(host)}/repos")
    assert (repos.user, repos.group, repos.mode) == ("root", "root", 0o711)
    for name in clients:
        account = f"backup-{name}"
        assert host.user(account).exists
        repository = host.file(f"{_base(host)}/repos/{name}")
        assert (repository.user, repository.mode) == (account, 0o700)
        keys = host.file(f"{_base(host)}/accounts/{name}/.ssh/authorized_keys")
        assert keys.user == "root" and keys.mode & 0o022 == 0
        lines = [line for line in keys.content_string.splitlines() if line and line[0] != "#"]
        assert len(lines) == 1
        assert lines[0].startswith("restrict,")
        assert (
            f'command="/usr/bin/rclone serve restic --stdio --append-only --config /dev/null '
            f'{_base(host)}/repos/{name}"'
        ) in lines[0]
        effective = host.check_output(
            f"sshd -T -C user={account},host=client.invalid,addr=198.18.0.1"
        )
        settings = dict(line.split(" ", 1) for line in effective.splitlines() if " " in line)
        assert (settings["forcecommand"], settings["chrootdirectory"]) == ("none", "none")


def test_the_former_shared_account_is_gone_and_its_repositories_kept(host):
    assert not host.user(LEGACY_USER).exists
    assert not host.file(f"{_base(host)}/.ssh").exists
    owners = host.check_output(f"find {_base(host)}/repos -mindepth 1 -printf '%u\\n' | sort -u")
    assert set(owners.split()) <= {f"backup-{name}" for name in _clients(host)}, owners


def test_repositories_are_encrypted(host):
    repositories = _repositories(host)
    assert repositories, "no repository on the target: has a client been converged?"
    for repository in repositories:
        config = host.file(f"{repository}/config").content
        with pytest.raises(ValueError):
            json.loads(config)
        assert b"chunker_polynomial" not in config, f"{repository}/config is plaintext"
        assert host.file(f"{repository}/data").is_directory


def _client_passwords(host: Any) -> list[str]:
    """The repository passwords of the clients backing up to this host, as the play sees
    them (inventory values may come from the vault: rendered by ansible, never printed)."""
    variables = host.ansible.get_variables()
    me = variables["inventory_hostname"]
    default_target = (variables.get("groups", {}).get(GROUP) or [""])[0]
    clients = (
        "groups['all'] | map('extract', hostvars)"
        " | selectattr('backup_repository_password', 'defined')"
    )
    found = []
    for attribute, default in (("backup_target_host", "''"), ("backup_repository_password", "''")):
        expression = f"{clients} | map(attribute='{attribute}', default={default}) | list"
        found.append(host.ansible("ansible.builtin.debug", f'var="{expression}"', check=False))
    targets, passwords = (next(v for k, v in r.items() if k != "changed") for r in found)
    return [p for t, p in zip(targets, passwords, strict=True) if (t or default_target) == me and p]


def test_no_repository_password_on_the_target(host):
    passwords = _client_passwords(host)
    assert passwords, "no client of this target in the inventory"
    for index, password in enumerate(passwords):
        # Over testinfra's own SSH connection (not an ansible module, whose arguments the
        # target's journal would record). Files only listed, never printed.
        search = host.run(
            "grep -rlF --exclude-dir=.ansible -e "
            + shlex.quote(password)
            + " "
            + " ".join(SEARCHED)
        )
        assert search.rc == 1 and not search.stdout, (
            f"the repository password of client #{index} is on the target: {search.stdout.split()}"
        )


def test_interrupted_uploads_are_deleted_after_a_day(host):
    # What a killed restic run leaves in a repository: its pack being uploaded (C7).
    repository = _repositories(host)[0]
    user = host.file(repository).user
    data = f"{repository}/data/ff"
    old, fresh = f"{data}/feedface-restic-temp-1", f"{data}/feedface-restic-temp-2"
    with host.sudo():
        host.run_test(f"install -d -o {user} -m 0700 {data}")
        host.run_test(f"touch -d '2 days ago' {old} && touch {fresh}")
        try:
            assert host.service("educloud-backup-stale-uploads.timer").is_enabled
            host.run_expect([0], "systemctl start educloud-backup-stale-uploads.service")
            assert not host.file(old).exists
            assert host.file(fresh).exists  # a run in progress keeps its upload
        finally:
            host.run(f"rm -f {old} {fresh}")
