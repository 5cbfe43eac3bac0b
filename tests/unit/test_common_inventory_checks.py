"""The common role refuses a host outside the hosting policy, or a bad egress list,
before changing anything (C1, C5)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from educloud import policy
from educloud.paths import repo_root

PLAYBOOK = Path(__file__).parent / "playbooks" / "common_validate.yml"
LAB_HOSTING = {"provider": "educloud-lab", "country": "FR", "datacenter": "local"}


def _validate(extra: dict[str, object]) -> subprocess.CompletedProcess[str]:
    policies = policy.load()
    variables = {
        "common_ssh_allowed_networks": ["198.18.0.0/24"],
        "common_hosting_countries": list(policies.countries_allowed),
        "common_hosting_providers": policies.raw["hosting"]["providers"],
        "common_egress_destinations": policies.raw["egress"]["destinations"],
        "educloud_hosting": LAB_HOSTING,
        **extra,
    }
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            str(PLAYBOOK),
            "-i",
            "localhost,",
            "-e",
            json.dumps(variables),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={
            "ANSIBLE_ROLES_PATH": str(repo_root() / "roles"),
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_NOCOLOR": "1",
        },
    )


def test_lab_declaration_is_accepted() -> None:
    result = _validate({})
    assert result.returncode == 0, result.stdout[-2000:]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"educloud_hosting": {}}, "must declare where it runs"),
        ({"educloud_hosting": LAB_HOSTING | {"country": "US"}}, "allows only FR"),
        ({"educloud_hosting": LAB_HOSTING | {"provider": "hyperscaler"}}, "not approved in"),
        ({"educloud_hosting": LAB_HOSTING | {"datacenter": "dublin-1"}}, "not approved in"),
        (
            {
                "common_egress_destinations": [
                    {"name": "m", "address": "deb.debian.org", "port": 80, "protocol": "tcp"}
                ]
            },
            "no DNS name",
        ),
    ],
)
def test_bad_declaration_is_refused(extra: dict[str, object], message: str) -> None:
    result = _validate(extra)
    assert result.returncode != 0
    assert message in " ".join(result.stdout.split())
