"""Issue #29's web findings, tried again the way the audit did: curl from the host side with
--path-as-is (no client-side normalisation) against the lab's reverse proxy on edu1.

1. Keycloak's admin API through the public name, whatever the path's encoding;
2. the master realm (its token endpoint, its discovery document) on the public name;
7. a name no site serves (a Host header made up on a connection opened for a real site,
   and on port 80): 421, never nginx's welcome page nor a redirect to the made-up name.
The charter's own checks (tests/charter/test_exposure.py) observe the same with another
client; these stay independent of that code.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

PROXY = "198.18.0.11"
PUBLIC = "auth.educloud.test"
CLOUD = "cloud.educloud.test"
CA = "/var/lib/educloud-lab/ca.crt"
NGINX_PAGE = "<center>nginx</center>"

# The audit's request, the variants it saw held, and more of the same family.
ADMIN_PATHS = [
    "/admin/realms/..%2f..%2f",
    "/admin/realms/..%2F..%2F",
    "/admin/realms/lab/..%2f..%2f..%2f",
    "/admin/master/console/",
    "//admin/realms/lab",
    "/%61dmin/realms/lab",
    "/ADMIN/realms/lab",
    "/admin;/realms/lab",
    "/admin/realms/%2e%2e/%2e%2e/",
    "/realms/lab/..%2f..%2fadmin/realms/lab",
    "/realms/lab/%2e%2e/%2e%2e/admin/realms/lab",
    "/resources/..%2fadmin/realms/lab",
    "/realms/lab/..;/..;/admin/realms/lab",
    "/metrics",
    "/health/ready",
    "/realms/lab/..%2f..%2fmetrics",
]
MASTER_PATHS = [
    "/realms/master/.well-known/openid-configuration",
    "/realms/lab/..%2fmaster/.well-known/openid-configuration",
    "/realms/%6daster/.well-known/openid-configuration",
    "//realms/master/.well-known/openid-configuration",
    "/resources/..%2frealms/master/.well-known/openid-configuration",
]


def _curl(url: str, *args: str, name: str = PUBLIC, port: int = 443) -> tuple[int, str]:
    if not Path(CA).is_file():
        pytest.fail(
            f"{CA} missing: deploy the lab first (educloud deploy --inventory inventories/lab)"
        )
    result = subprocess.run(
        [
            "curl", "-sS", "--path-as-is", "--max-time", "15", "--cacert", CA,
            "--resolve", f"{name}:{port}:{PROXY}", "-o", "-", "-w", "\n%{http_code}", *args, url,
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    body, _, code = result.stdout.rpartition("\n")
    return int(code or 0), body


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_admin_paths_never_reach_keycloak_on_the_public_name(path: str) -> None:
    status, body = _curl(f"https://{PUBLIC}{path}")
    # Keycloak's admin API answers 401 without a token, "Realm not found" for a mangled realm.
    assert status != 401, f"{path}: Keycloak's admin API answered 401"
    assert "Realm not found" not in body, f"{path}: Keycloak's admin API answered"
    assert status in (400, 403, 404), f"{path}: {status}"


@pytest.mark.parametrize("path", MASTER_PATHS)
def test_master_realm_not_served_on_the_public_name(path: str) -> None:
    status, body = _curl(f"https://{PUBLIC}{path}")
    assert '"issuer"' not in body, f"{path}: master's discovery document served"
    assert status in (400, 403, 404), f"{path}: {status}"


def test_master_token_endpoint_not_on_the_public_name() -> None:
    status, body = _curl(
        f"https://{PUBLIC}/realms/master/protocol/openid-connect/token",
        "--data", "grant_type=password&client_id=admin-cli&username=admin&password=wrong",
    )  # fmt: skip
    assert NGINX_PAGE in body, f"Keycloak answered ({status}): {body[:200]}"


def test_tenant_realm_still_served_on_the_public_name() -> None:
    status, body = _curl(f"https://{PUBLIC}/realms/lab/.well-known/openid-configuration")
    assert status == 200 and '"issuer"' in body, status


@pytest.mark.parametrize("site", [PUBLIC, CLOUD])
def test_made_up_host_on_a_real_sites_connection_gets_421(site: str) -> None:
    status, body = _curl(f"https://{site}/", "-H", "Host: evil.example", name=site)
    assert status == 421, f"{site}: {status} {body[:200]}"
    assert "Welcome to nginx" not in body


def test_made_up_host_on_port_80_gets_no_redirect() -> None:
    status, body = _curl(
        f"http://{CLOUD}/x", "-H", "Host: evil.example", "-D", "-", name=CLOUD, port=80
    )
    assert status == 421, f"{status}: {body[:300]}"
    assert "evil.example" not in body


def test_real_names_on_port_80_still_redirect_to_https() -> None:
    status, body = _curl(f"http://{CLOUD}/x?y=1", "-D", "-", name=CLOUD, port=80)
    assert status == 301, status
    assert f"location: https://{CLOUD}/x?y=1" in body.lower()
