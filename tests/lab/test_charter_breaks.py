"""The charter checks fail on a deliberately broken lab host, end to end.

Each test breaks one control on edu1 over SSH, runs the matching checks of
tests/charter exactly as `educloud verify` does, expects them to fail, and restores the
control (the restoration is what the role itself applies, so the host ends as it began).
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.lab.lab_shell import lab_ssh

from educloud.charter.verify import pytest_argv
from educloud.deploy import ansible_env
from educloud.junit import read_cases
from educloud.paths import inventories_dir, repo_root

pytestmark = pytest.mark.lab
HOST = "edu1"


def _ssh(command: str) -> str:
    return lab_ssh(HOST, command)


def _charter_outcomes(selection: str) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        argv = pytest_argv(inventories_dir() / "lab", junit, limit=HOST, selection=selection)
        subprocess.run(argv, cwd=repo_root(), env=ansible_env(), capture_output=True, check=False)
        return {case.name: case.outcome for case in read_cases(junit)}


@contextmanager
def broken(break_command: str, restore_command: str) -> Iterator[None]:
    _ssh(break_command)
    try:
        yield
    finally:
        _ssh(restore_command)


@pytest.mark.parametrize(
    ("break_command", "checks"),
    [
        # Any program may now connect anywhere.
        (
            "nft insert rule inet educloud output accept",
            "test_egress_default_deny_loaded or test_unlisted_destination_refused",
        ),
        # Both directions open. (Not `nft flush ruleset`: an SSH session opened while
        # nothing tracks connections hangs when the ruleset comes back.)
        (
            "nft insert rule inet educloud output accept;"
            " nft insert rule inet educloud input accept;"
            " nft 'chain inet educloud output { policy accept; }';"
            " nft 'chain inet educloud input { policy accept; }'",
            "test_egress_default_deny_loaded or test_inbound_default_deny",
        ),
    ],
)
def test_egress_checks_fail_without_the_firewall(break_command: str, checks: str) -> None:
    with broken(break_command, "systemctl reload nftables"):
        outcomes = _charter_outcomes(checks)
    assert outcomes and set(outcomes.values()) == {"failed"}, outcomes
    assert set(_charter_outcomes(checks).values()) == {"passed"}, "the host was not restored"


def test_retention_check_fails_on_longer_journal() -> None:
    drop_in = "/etc/systemd/journald.conf.d/zz-broken.conf"
    with broken(f"printf '[Journal]\\nMaxRetentionSec=1year\\n' > {drop_in}", f"rm -f {drop_in}"):
        outcomes = _charter_outcomes("test_journald_retention")
    assert list(outcomes.values()) == ["failed"], outcomes


def test_telemetry_check_fails_with_popcon_installed() -> None:
    with broken(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q popularity-contest",
        "apt-get purge -y -q popularity-contest",
    ):
        outcomes = _charter_outcomes("test_no_telemetry_package")
    assert list(outcomes.values()) == ["failed"], outcomes


def test_keycloak_retention_check_fails_on_longer_event_expiration() -> None:
    from keycloak import KeycloakAdmin

    from educloud.lab import secrets as lab_secrets
    from educloud.lab.settings import LabPaths
    from educloud.netpin import pinned_names

    paths = LabPaths.default()
    with pinned_names({"auth-admin.educloud.test": "198.18.0.11"}):
        admin = KeycloakAdmin(
            server_url="https://auth-admin.educloud.test",
            username="admin",
            password=lab_secrets.read(paths)["vault_keycloak_admin_password"],
            realm_name="master",
            verify=str(paths.root / "ca.crt"),
        )
        original = admin.get_realm("lab")["eventsExpiration"]
        admin.update_realm("lab", {"eventsExpiration": original * 4})
        try:
            outcomes = _charter_outcomes("test_login_events_expiration")
        finally:
            admin.update_realm("lab", {"eventsExpiration": original})
    assert list(outcomes.values()) == ["failed"], outcomes
    assert list(_charter_outcomes("test_login_events_expiration").values()) == ["passed"]


def test_privacy_notice_checks_fail_without_the_notice() -> None:
    page = "/var/www/educloud/privacy/index.html"
    with broken(f"mv {page} {page}.moved", f"mv {page}.moved {page}"):
        outcomes = _charter_outcomes("test_privacy_notice")
    assert outcomes and set(outcomes.values()) == {"failed"}, outcomes
