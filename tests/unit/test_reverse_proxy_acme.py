"""The acme certificate source needs its CA among the approved destinations (C5, #28).

The common role's firewall lets the servers reach the destinations of policies/egress.yml
only: an ACME CA that is not one of them (purpose acme_ca, tcp, the directory URL's port)
would make every order time out at the first deploy. The reverse_proxy role's validation
(run by the real ansible-playbook on this machine) refuses that before anything changes.
"""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml
from tests.unit.role_validation import validate_role

from educloud import policy
from educloud.paths import inventories_dir

SITE = {"name": "cloud.example.test", "upstream": "http://127.0.0.1:8081"}
NOTICE = yaml.safe_load((inventories_dir() / "lab/group_vars/reverse_proxy.yml").read_text())[
    "reverse_proxy_privacy_notice"
]
DIRECTORY = "https://acme.ca.example.fr/directory"


def _ca(port: int = 443, purpose: str = "acme_ca", protocol: str = "tcp") -> dict[str, object]:
    return {
        "name": "acme-ca",
        "purpose": purpose,
        "description": "Autorité ACME",
        "address": "192.0.2.80",
        "port": port,
        "protocol": protocol,
        "country": "FR",
    }


def _validate(directory: str, destinations: list[dict[str, object]]) -> str:
    policies = policy.load().raw
    result: subprocess.CompletedProcess[str] = validate_role(
        "reverse_proxy",
        {
            "reverse_proxy_sites": [SITE],
            "reverse_proxy_privacy_notice": NOTICE,
            "reverse_proxy_privacy_retention_categories": policies["retention"]["categories"],
            "reverse_proxy_privacy_hosting_providers": policies["hosting"]["providers"],
            "reverse_proxy_certificate_source": "acme",
            "reverse_proxy_acme_directory_url": directory,
            "reverse_proxy_acme_terms_agreed": True,
            "reverse_proxy_acme_egress_destinations": destinations,
        },
    )
    return f"rc={result.returncode}\n" + re.sub(r"\s+", " ", result.stdout + result.stderr)


@pytest.mark.parametrize(
    ("directory", "destinations"),
    [
        (DIRECTORY, [_ca()]),
        ("https://acme.ca.example.fr:14000/dir", [_ca(443), _ca(14000)]),
    ],
    ids=["default port", "the URL's own port"],
)
def test_a_ca_among_the_destinations_passes(
    directory: str, destinations: list[dict[str, object]]
) -> None:
    output = _validate(directory, destinations)
    assert output.startswith("rc=0"), output[-2000:]


@pytest.mark.parametrize(
    ("directory", "destinations"),
    [
        (DIRECTORY, []),
        (DIRECTORY, [_ca(purpose="artifact_source")]),
        (DIRECTORY, [_ca(protocol="udp")]),
        ("https://acme.ca.example.fr:14000/dir", [_ca(443)]),
    ],
    ids=["no destination", "another purpose", "udp", "another port"],
)
def test_a_ca_outside_the_destinations_is_refused_before_anything_changes(
    directory: str, destinations: list[dict[str, object]]
) -> None:
    output = _validate(directory, destinations)
    assert not output.startswith("rc=0"), output[-2000:]
    assert "must be an acme_ca destination of policies/egress.yml" in output, output[-2000:]
    assert "Nothing was changed on localhost" in output
    assert re.search(r"changed=0\s", output), output[-1500:]
