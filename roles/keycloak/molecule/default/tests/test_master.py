"""The master realm on a converged host: handed over to the automation client, the bootstrap
administrator gone from Keycloak and from every environment, brute force and events like a
tenant realm (C10), offline sessions bounded by the policy (C7). Through the admin API on
the host's loopback; each test cleans up what it creates."""

from __future__ import annotations

import json
import shlex
import uuid
from typing import Any

import pytest

from educloud.hostscope import policies, setting, skip_unless_in_group

DAY = 86400


@pytest.fixture(autouse=True)
def _only_keycloak_hosts(host):
    skip_unless_in_group(host.ansible.get_variables(), "keycloak")


def _call(host, method: str, url: str, token: str | None = None, body: Any = None, form=None):
    args = ["curl", "-s", "-X", method, "-w", r"\n%{http_code}", "-H", "Accept: application/json"]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
    for key, value in (form or {}).items():
        args += ["--data-urlencode", f"{key}={value}"]
    # Not check_output: its failure message quotes the command, secrets and token included.
    result = host.run(" ".join(shlex.quote(a) for a in [*args, url]))
    assert result.rc == 0, f"curl -X {method} {url}: exit {result.rc} {result.stderr[-300:]}"
    text, _, status = result.stdout.rpartition("\n")
    try:
        return int(status), json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        return int(status), text


def _templated(host, expression: str) -> Any:
    """An inventory expression as Ansible templates it: the lab's values are expressions over
    its vault ("{{ vault_... }}"), which get_variables() returns as written."""
    return host.ansible("ansible.builtin.debug", f"msg={{{{ {expression} }}}}", check=False)["msg"]


@pytest.fixture
def kc(host):
    variables = host.ansible.get_variables()
    return {
        "base": (
            f"http://{setting(host, 'keycloak_http_host', '127.0.0.1')}"
            f":{variables.get('keycloak_http_port', 8080)}"
        ),
        "config_dir": variables.get("keycloak_config_dir", "/etc/keycloak"),
        "client_id": variables.get("keycloak_automation_client_id", "educloud-automation"),
        "secret": _templated(host, "keycloak_automation_client_secret"),
        "admin_user": variables.get("keycloak_admin_user", "admin"),
        "admin_password": _templated(host, "keycloak_admin_password"),
        "master_admins": _templated(host, "keycloak_master_admins | default([])"),
        "realms": [r["name"] for r in variables.get("keycloak_realms", [])],
    }


def _password_grant(host, kc, username: str, password: str):
    return _call(
        host,
        "POST",
        f"{kc['base']}/realms/master/protocol/openid-connect/token",
        form={
            "grant_type": "password",
            "client_id": "admin-cli",
            "username": username,
            "password": password,
        },
    )


@pytest.fixture
def token(host, kc):
    status, answer = _call(
        host,
        "POST",
        f"{kc['base']}/realms/master/protocol/openid-connect/token",
        form={
            "grant_type": "client_credentials",
            "client_id": kc["client_id"],
            "client_secret": kc["secret"],
        },
    )
    assert status == 200, f"the automation client got no token: {answer}"
    return answer["access_token"]


def _realm(host, kc, token, realm: str) -> dict[str, Any]:
    status, answer = _call(host, "GET", f"{kc['base']}/admin/realms/{realm}", token)
    assert status == 200, answer
    return answer


def test_master_is_protected_and_audited_like_a_tenant_realm(host, kc, token):
    master = _realm(host, kc, token, "master")
    assert master["bruteForceProtected"] is True
    assert 0 < master["failureFactor"] <= 10
    assert "length(" in master.get("passwordPolicy", "")
    assert master["eventsEnabled"] is True
    assert master["adminEventsEnabled"] is True
    assert master["adminEventsDetailsEnabled"] is True
    retention = policies(host.ansible.get_variables()).retention
    assert master["eventsExpiration"] == retention["login_events"]["retention_days"] * DAY
    assert master["browserFlow"] == "educloud-browser"
    assert master["directGrantFlow"] == "educloud-direct-grant"


def test_offline_sessions_end_as_the_policy_says(host, kc, token):
    rule = policies(host.ansible.get_variables()).retention["offline_sessions"]
    for realm in ["master", *kc["realms"]]:
        settings = _realm(host, kc, token, realm)
        assert settings["offlineSessionMaxLifespanEnabled"] is True, realm
        assert settings["offlineSessionMaxLifespan"] == rule["retention_days"] * DAY, realm
        assert settings["offlineSessionIdleTimeout"] == rule["idle_days"] * DAY, realm


def test_no_temporary_administrator_is_left(host, kc, token):
    users = f"{kc['base']}/admin/realms/master/users"
    status, flagged = _call(host, "GET", f"{users}?q=is_temporary_admin:true", token)
    assert status == 200
    assert flagged == []
    status, named = _call(host, "GET", f"{users}?exact=true&username={kc['admin_user']}", token)
    assert named == []
    # Observed: the bootstrap password opens nothing any more.
    status, answer = _password_grant(host, kc, kc["admin_user"], kc["admin_password"])
    # 400 invalid_grant: the account is gone (a wrong password would be 401).
    assert status in (400, 401) and "access_token" not in answer, answer


def test_no_bootstrap_password_in_any_environment(host, kc):
    with host.sudo():
        env = host.file(f"{kc['config_dir']}/keycloak.env").content_string
        pid = host.check_output("systemctl show -p MainPID --value keycloak").strip()
        environ = host.file(f"/proc/{pid}/environ").content_string
    assert "KC_BOOTSTRAP_ADMIN" not in env
    assert kc["admin_password"] not in env
    assert "KC_BOOTSTRAP_ADMIN" not in environ
    assert kc["admin_password"] not in environ


def test_platform_administrators_need_otp(host, kc, token):
    assert kc["master_admins"], "the scenario declares a platform administrator"
    for admin in kc["master_admins"]:
        # The right password alone gets no token: OTP is still to be configured.
        _, answer = _password_grant(host, kc, admin["username"], admin["password"])
        assert "access_token" not in (answer or {}), admin["username"]


def test_master_locks_an_account_after_wrong_passwords(host, kc, token):
    users = f"{kc['base']}/admin/realms/master/users"
    username = f"molecule-{uuid.uuid4().hex[:8]}"
    password = f"Molecule-{uuid.uuid4().hex}!"
    status, _ = _call(
        host,
        "POST",
        users,
        token,
        {
            "username": username,
            "enabled": True,
            "credentials": [{"type": "password", "value": password, "temporary": False}],
        },
    )
    assert status == 201
    _, found = _call(host, "GET", f"{users}?exact=true&username={username}", token)
    user_id = found[0]["id"]
    try:
        status, _ = _password_grant(host, kc, username, password)
        assert status == 200, "control: the right password works before the guessing"
        failures = _realm(host, kc, token, "master")["failureFactor"]
        for _ in range(failures + 1):
            _password_grant(host, kc, username, "wrong-" + password)
        status, answer = _password_grant(host, kc, username, password)
        assert "access_token" not in answer, "locked: the right password is refused"
    finally:
        _call(host, "DELETE", f"{users}/{user_id}", token)
