"""The common role refuses a host outside the hosting policy, or a bad egress list,
before changing anything (C1, C5)."""

from __future__ import annotations

import subprocess

import pytest
from tests.unit.role_validation import validate_role

from educloud import policy

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
    return validate_role("common", variables)


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
        (
            {
                "common_ssh_allow_users": ["admin"],
                "common_ssh_sftp_chroot_users": [
                    {"user": "educloud-backup", "directory": "/srv/educloud-backup"}
                ],
            },
            "its user must be listed there too",
        ),
        ({"common_timezone": "Europe/Paris; rm -rf /"}, "must be an IANA time zone name"),
        ({"common_timezone": "../../etc/passwd"}, "must be an IANA time zone name"),
    ],
)
def test_bad_declaration_is_refused(extra: dict[str, object], message: str) -> None:
    result = _validate(extra)
    assert result.returncode != 0
    assert message in " ".join(result.stdout.split())
