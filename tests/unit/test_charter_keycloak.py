"""The Keycloak charter checks' logic fails on broken realms, flows and events.

tests/charter/test_keycloak.py reads the admin API and hands the JSON to
educloud.charter.keycloak; here each function gets the lab's good JSON and broken
variants of it (the shapes are copied from Keycloak 26's admin API).
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from educloud.charter import keycloak as kc

# --- Identity providers ---------------------------------------------------------------------

INVENTORY_REALMS: list[Any] = [
    {
        "name": "academie",
        "display_name": "Académie",
        "identity_providers": [
            {
                "alias": "annuaire",
                "provider_id": "saml",
                "config": {
                    "singleSignOnServiceUrl": "https://idp.academie.fr/sso",
                    "metadataDescriptorUrl": "https://IDP.academie.fr/metadata",
                    "entityId": "https://auth.academie.fr/realms/academie",
                    "signingCertificate": "MIIC...",
                },
            },
            {
                "alias": "ent",
                "provider_id": "oidc",
                "config": {
                    "authorizationUrl": "https://ent.academie.fr/auth",
                    "tokenUrl": "{{ ent_token_url }}",
                    "clientSecret": "{{ vault_ent_secret }}",
                },
            },
        ],
    },
    {"name": "college", "display_name": "Collège"},
    "not a realm",
]

ANNUAIRE: dict[str, Any] = {
    "alias": "annuaire",
    "providerId": "saml",
    "enabled": True,
    "config": {
        "singleSignOnServiceUrl": "https://idp.academie.fr/sso",
        "metadataDescriptorUrl": "https://idp.academie.fr/metadata",
        "entityId": "https://auth.academie.fr/realms/academie",
        "nameIDPolicyFormat": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    },
}


def _declared() -> dict[str, tuple[kc.DeclaredProvider, ...]]:
    return kc.declared_identity_providers(INVENTORY_REALMS)


def test_declared_providers_read_from_the_inventory() -> None:
    declared = _declared()
    assert set(declared) == {"academie", "college"}
    assert declared["college"] == ()
    annuaire, ent = declared["academie"]
    assert annuaire.provider_id == "saml"
    assert annuaire.hosts == {"idp.academie.fr", "auth.academie.fr"}
    # The templated URL is named, the templated secret (not a URL) is not.
    assert ent.hosts == {"ent.academie.fr"}
    assert ent.templated == ("tokenUrl",)


def test_declared_provider_passes() -> None:
    assert kc.identity_provider_problems("academie", [ANNUAIRE], _declared()["academie"]) == []


def test_no_provider_no_declaration_passes() -> None:
    assert kc.identity_provider_problems("master", [], ()) == []


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        # An OIDC provider on an address of the lab, not declared.
        (
            {
                "alias": "evil",
                "providerId": "oidc",
                "config": {"authorizationUrl": "http://198.18.0.254/auth"},
            },
            "identity provider evil (oidc, enabled, hosts 198.18.0.254) is not declared",
        ),
        # Disabled does not make it declared.
        (
            {"alias": "dormant", "providerId": "keycloak-oidc", "enabled": False, "config": {}},
            "identity provider dormant (keycloak-oidc, disabled) is not declared",
        ),
        # A social provider has no URL in its config: its alias and type are enough.
        (
            {"alias": "github", "providerId": "github", "config": {"clientId": "x"}},
            "identity provider github (github, enabled) is not declared",
        ),
    ],
)
def test_undeclared_provider_fails(provider: dict[str, Any], expected: str) -> None:
    problems = kc.identity_provider_problems(
        "academie", [ANNUAIRE, provider], _declared()["academie"]
    )
    assert len(problems) == 1
    assert expected in problems[0]


def test_master_allows_no_provider() -> None:
    assert kc.identity_provider_problems("master", [ANNUAIRE], ()) == [
        "realm master: identity provider annuaire (saml, enabled, hosts auth.academie.fr, "
        "idp.academie.fr) is not declared in the inventory (keycloak_realms[].identity_providers)"
    ]


def test_declared_alias_of_another_type_fails() -> None:
    oidc = copy.deepcopy(ANNUAIRE) | {"providerId": "oidc"}
    assert kc.identity_provider_problems("academie", [oidc], _declared()["academie"]) == [
        "realm academie: identity provider annuaire is of type oidc, the inventory declares saml"
    ]


@pytest.mark.parametrize(
    ("key", "url", "host"),
    [
        ("jwksUrl", "https://keys.example.com/jwks", "keys.example.com"),
        # Userinfo before the host: the host is the part after '@'.
        ("singleLogoutServiceUrl", "https://idp.academie.fr@evil.example/slo", "evil.example"),
        # A URL inside a longer value still counts.
        ("metadataDescriptorUrl", "see HTTPS://Mirror.Example.net/md please", "mirror.example.net"),
    ],
)
def test_declared_alias_with_a_foreign_url_fails(key: str, url: str, host: str) -> None:
    foreign = copy.deepcopy(ANNUAIRE)
    foreign["config"][key] = url
    problems = kc.identity_provider_problems("academie", [foreign], _declared()["academie"])
    assert problems == [
        f"realm academie: identity provider annuaire: {key} points at {host}, not a host the "
        "inventory declares for it (auth.academie.fr, idp.academie.fr)"
    ]


def test_templated_url_approves_no_host() -> None:
    ent = {
        "alias": "ent",
        "providerId": "oidc",
        "config": {
            "authorizationUrl": "https://ent.academie.fr/auth",
            "tokenUrl": "https://token.academie.fr/token",
        },
    }
    problems = kc.identity_provider_problems("academie", [ent], _declared()["academie"])
    assert problems == [
        "realm academie: identity provider ent: tokenUrl points at token.academie.fr, not a host "
        "the inventory declares for it (ent.academie.fr); the inventory gives tokenUrl as Jinja "
        "templates, whose hosts cannot be approved"
    ]


def test_templated_alias_matches_nothing() -> None:
    declared = kc.declared_identity_providers(
        [{"name": "r", "identity_providers": [{"alias": "{{ idp }}", "provider_id": "saml"}]}]
    )
    problems = kc.identity_provider_problems("r", [ANNUAIRE], declared["r"])
    assert len(problems) == 1
    assert "not declared" in problems[0]
    assert "{{ idp }} cannot be matched: Jinja templates" in problems[0]


def test_config_urls_and_hosts() -> None:
    config = {"b": "http://b.example/x y https://c.example:8443/z", "a": "no url", "n": 3}
    assert kc.config_urls(config) == [
        ("b", "http://b.example/x"),
        ("b", "https://c.example:8443/z"),
    ]
    assert kc.url_host("https://C.Example.:8443/z") == "c.example"
    assert kc.url_host("https://[::1") is None


# --- Administrators' second factor ----------------------------------------------------------

ROLE_CONFIG = "cfg-role"
CONFIGS: dict[str, dict[str, Any]] = {
    ROLE_CONFIG: {
        "alias": "admin-role",
        "config": {"condUserRole": "educloud-admin", "negate": "false"},
    }
}


def _step(level: int, index: int, name: str, requirement: str, **extra: Any) -> dict[str, Any]:
    return {"displayName": name, "requirement": requirement, "level": level, "index": index} | extra


def _flow(level: int, index: int, name: str, requirement: str) -> dict[str, Any]:
    return _step(level, index, name, requirement, authenticationFlow=True)


GOOD_BROWSER: list[dict[str, Any]] = [
    _step(0, 0, "Cookie", "ALTERNATIVE", providerId="auth-cookie"),
    _step(0, 1, "IdP Redirector", "ALTERNATIVE", providerId="identity-provider-redirector"),
    _flow(0, 2, "educloud-browser-forms", "ALTERNATIVE"),
    _step(1, 0, "Username Password Form", "REQUIRED", providerId="auth-username-password-form"),
    _flow(1, 1, "educloud-browser-admin-otp", "CONDITIONAL"),
    _step(
        2,
        0,
        "Condition - user role",
        "REQUIRED",
        providerId="conditional-user-role",
        authenticationConfig=ROLE_CONFIG,
    ),
    _step(2, 1, "OTP Form", "REQUIRED", providerId="auth-otp-form"),
]
GOOD_DIRECT_GRANT: list[dict[str, Any]] = [
    _step(0, 0, "Username Validation", "REQUIRED", providerId="direct-grant-validate-username"),
    _step(0, 1, "Password", "REQUIRED", providerId="direct-grant-validate-password"),
    _flow(0, 2, "educloud-direct-grant-admin-otp", "CONDITIONAL"),
    _step(
        1,
        0,
        "Condition - user role",
        "REQUIRED",
        providerId="conditional-user-role",
        authenticationConfig=ROLE_CONFIG,
    ),
    _step(1, 1, "OTP", "REQUIRED", providerId="direct-grant-validate-otp"),
]
# Keycloak's built-in flows: OTP only for users who configured one.
BUILTIN_DIRECT_GRANT: list[dict[str, Any]] = [
    *GOOD_DIRECT_GRANT[:2],
    _flow(0, 2, "Direct Grant - Conditional OTP", "CONDITIONAL"),
    _step(
        1, 0, "Condition - user configured", "REQUIRED", providerId="conditional-user-configured"
    ),
    _step(1, 1, "OTP", "REQUIRED", providerId="direct-grant-validate-otp"),
]
BROWSER = kc.FlowBinding("browser", "educloud-browser", "lab")
DIRECT_GRANT = kc.FlowBinding("direct_grant", "educloud-direct-grant", "lab")


def _browser_problems(executions: list[dict[str, Any]], configs: Any = None) -> list[str]:
    return kc.admin_otp_problems(
        BROWSER, executions, CONFIGS if configs is None else configs, "educloud-admin"
    )


def _with(executions: list[dict[str, Any]], name: str, **changes: Any) -> list[dict[str, Any]]:
    changed = copy.deepcopy(executions)
    for execution in changed:
        if execution["displayName"] == name:
            execution.update(changes)
    return changed


def test_good_flows_pass() -> None:
    assert _browser_problems(GOOD_BROWSER) == []
    assert kc.admin_otp_problems(DIRECT_GRANT, GOOD_DIRECT_GRANT, CONFIGS, "educloud-admin") == []


def test_builtin_direct_grant_fails() -> None:
    binding = kc.FlowBinding("direct_grant", "direct grant", "lab", client="admin-cli")
    assert kc.admin_otp_problems(binding, BUILTIN_DIRECT_GRANT, {}, "educloud-admin") == [
        "client admin-cli of realm lab: direct grant flow 'direct grant': subflow 'Direct Grant "
        "- Conditional OTP' also depends on the condition conditional-user-configured"
    ]


def test_browser_otp_step_in_a_direct_grant_binding_fails() -> None:
    problems = kc.admin_otp_problems(DIRECT_GRANT, GOOD_BROWSER, CONFIGS, "educloud-admin")
    assert problems == [
        "realm lab: direct grant flow 'educloud-direct-grant': the alternative subflow "
        "'educloud-browser-forms' completes the login without an OTP"
    ]


@pytest.mark.parametrize(
    ("name", "changes", "expected"),
    [
        ("OTP Form", {"requirement": "DISABLED"}, "'OTP Form' (auth-otp-form) is DISABLED"),
        (
            "OTP Form",
            {"requirement": "ALTERNATIVE"},
            "the OTP step 'OTP Form' (auth-otp-form) is ALTERNATIVE: skipped without an OTP",
        ),
        (
            "educloud-browser-admin-otp",
            {"requirement": "ALTERNATIVE"},
            "subflow 'educloud-browser-admin-otp' is ALTERNATIVE beside REQUIRED steps",
        ),
        (
            "educloud-browser-admin-otp",
            {"requirement": "DISABLED"},
            "subflow 'educloud-browser-admin-otp' is DISABLED",
        ),
        (
            "Condition - user role",
            {"requirement": "DISABLED"},
            "subflow 'educloud-browser-admin-otp' is CONDITIONAL without an active condition",
        ),
        (
            "Condition - user role",
            {"providerId": "conditional-user-configured"},
            "also depends on the condition conditional-user-configured",
        ),
        (
            "Condition - user role",
            {"authenticationConfig": "missing"},
            "is conditioned on the role (none), not on educloud-admin",
        ),
        (
            "OTP Form",
            {"providerId": "webauthn-authenticator"},
            "subflow 'educloud-browser-forms' completes the login without an OTP",
        ),
        # The forms as a whole disabled: only the cookie and the redirector are left.
        ("educloud-browser-forms", {"requirement": "DISABLED"}, "is DISABLED"),
    ],
)
def test_broken_browser_flow_fails(name: str, changes: dict[str, Any], expected: str) -> None:
    problems = _browser_problems(_with(GOOD_BROWSER, name, **changes))
    assert problems, f"{name} {changes} passed"
    assert all(p.startswith("realm lab: browser flow 'educloud-browser': ") for p in problems)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"condUserRole": "offline_access", "negate": "false"},
            "conditioned on the role offline_access",
        ),
        ({"condUserRole": "educloud-admin", "negate": "true"}, "applies to users without the role"),
    ],
)
def test_role_condition_on_something_else_fails(config: dict[str, str], expected: str) -> None:
    problems = _browser_problems(GOOD_BROWSER, {ROLE_CONFIG: {"config": config}})
    assert len(problems) == 1
    assert expected in problems[0]


def test_extra_condition_weakens_the_subflow() -> None:
    flow = [
        *GOOD_BROWSER[:6],
        _step(2, 1, "Attr", "REQUIRED", providerId="conditional-user-attribute"),
    ]
    flow.append(_step(2, 2, "OTP Form", "REQUIRED", providerId="auth-otp-form"))
    assert any(
        "also depends on the condition conditional-user-attribute" in p
        for p in _browser_problems(flow)
    )


def test_alternative_password_form_bypasses_the_otp() -> None:
    # Keycloak tries the alternatives of a flow in turn: any one that succeeds completes it.
    bypass = _step(0, 5, "Password only", "ALTERNATIVE", providerId="auth-username-password-form")
    assert _browser_problems([*GOOD_BROWSER, bypass]) == [
        "realm lab: browser flow 'educloud-browser': the alternative 'Password only' "
        "(auth-username-password-form) completes the login without an OTP"
    ]


def test_builtin_browser_flow_fails() -> None:
    builtin = [
        _step(0, 0, "Cookie", "ALTERNATIVE", providerId="auth-cookie"),
        _step(0, 1, "Kerberos", "DISABLED", providerId="auth-spnego"),
        _flow(0, 2, "forms", "ALTERNATIVE"),
        _step(1, 0, "Username Password Form", "REQUIRED", providerId="auth-username-password-form"),
        _flow(1, 1, "Browser - Conditional 2FA", "CONDITIONAL"),
        _step(
            2,
            0,
            "Condition - user configured",
            "REQUIRED",
            providerId="conditional-user-configured",
        ),
        _step(2, 1, "OTP Form", "ALTERNATIVE", providerId="auth-otp-form"),
    ]
    problems = _browser_problems(builtin)
    assert problems == [
        "realm lab: browser flow 'educloud-browser': in subflow 'forms': subflow 'Browser - "
        "Conditional 2FA' also depends on the condition conditional-user-configured"
    ]


def test_unconditional_otp_for_everyone_passes() -> None:
    # Stricter than the role's flow: every user, administrators included, needs the OTP.
    flow = _with(GOOD_BROWSER, "educloud-browser-admin-otp", requirement="REQUIRED")
    assert _browser_problems(flow) == []


def test_steps_out_of_order_are_sorted_by_index() -> None:
    shuffled = [GOOD_BROWSER[2], GOOD_BROWSER[4], GOOD_BROWSER[6], GOOD_BROWSER[5], GOOD_BROWSER[3]]
    tree = kc.flow_tree([GOOD_BROWSER[0], *shuffled])
    forms = tree[1]
    assert [c.execution["displayName"] for c in forms.children] == [
        "Username Password Form",
        "educloud-browser-admin-otp",
    ]


def test_malformed_levels_fail() -> None:
    orphan = [_step(0, 0, "Cookie", "ALTERNATIVE", providerId="auth-cookie"), GOOD_BROWSER[6]]
    assert _browser_problems(orphan) == [
        "realm lab: browser flow 'educloud-browser': execution OTP Form has no parent subflow"
    ]


def test_flow_bindings_include_client_overrides() -> None:
    realm = {
        "realm": "lab",
        "browserFlow": "educloud-browser",
        "directGrantFlow": "educloud-direct-grant",
    }
    flows = [{"id": "f1", "alias": "browser"}, {"id": "f2", "alias": "direct grant"}]
    clients = [
        {"clientId": "nextcloud", "authenticationFlowBindingOverrides": {"browser": "f1"}},
        {"clientId": "admin-cli", "authenticationFlowBindingOverrides": {"direct_grant": "gone"}},
        {"clientId": "account", "authenticationFlowBindingOverrides": {}},
    ]
    bindings, problems = kc.flow_bindings(realm, clients, flows)
    assert bindings == [
        kc.FlowBinding("browser", "educloud-browser", "lab"),
        kc.FlowBinding("direct_grant", "educloud-direct-grant", "lab"),
        kc.FlowBinding("browser", "browser", "lab", client="nextcloud"),
    ]
    assert bindings[2].bound_by == "client nextcloud of realm lab"
    assert bindings[2].french == "client nextcloud du royaume lab"
    assert problems == [
        "client admin-cli of realm lab overrides its direct_grant flow with unknown flow gone"
    ]


# --- Login behaviour ------------------------------------------------------------------------


def test_otp_pages_recognised() -> None:
    assert kc.otp_page('<form id="kc-otp-login-form"><input id="otp" name="otp">') == "otp"
    assert kc.otp_page('<form id="kc-totp-settings-form"><input name="totp">') == "otp-setup"
    assert kc.otp_page('<form id="kc-form-login"><input name="password">') is None


def test_login_redirect_uri() -> None:
    public = "https://auth.educloud.test"
    account = {"rootUrl": "${authBaseUrl}", "redirectUris": ["/realms/lab/account/*"]}
    assert (
        kc.login_redirect_uri(account, public) == "https://auth.educloud.test/realms/lab/account/"
    )
    nextcloud = {"redirectUris": ["https://cloud.educloud.test/apps/user_oidc/code"]}
    assert (
        kc.login_redirect_uri(nextcloud, public)
        == "https://cloud.educloud.test/apps/user_oidc/code"
    )
    assert (
        kc.login_redirect_uri({"rootUrl": "${authAdminUrl}", "redirectUris": ["/x/*"]}, public)
        is None
    )
    assert kc.login_redirect_uri({"redirectUris": ["+", "https://a.test/*/x"]}, public) is None


# --- Retention observed ---------------------------------------------------------------------

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_retention_cutoff_has_a_day_of_grace() -> None:
    assert kc.retention_cutoff(NOW, 180) == NOW - timedelta(days=181)


def test_no_old_event_passes() -> None:
    cutoff = kc.retention_cutoff(NOW, 180)
    recent = [{"id": "e1", "time": _ms(NOW - timedelta(days=180)), "type": "LOGIN"}]
    assert kc.old_event_problems("login events of realm lab", recent, cutoff, 180) == []
    assert kc.old_event_problems("login events of realm lab", [], cutoff, 180) == []


def test_old_events_fail_naming_the_oldest() -> None:
    cutoff = kc.retention_cutoff(NOW, 365)
    events = [
        {"id": "a1", "time": _ms(NOW - timedelta(days=400)), "operationType": "UPDATE"},
        {
            "id": "a0",
            "time": _ms(datetime(2024, 1, 2, 3, 4, tzinfo=UTC)),
            "operationType": "CREATE",
        },
    ]
    assert kc.old_event_problems("admin events of realm lab", events, cutoff, 365) == [
        "Keycloak still returns admin events of realm lab older than the policy's 365 days (and "
        "a day of grace): the oldest is CREATE of 2024-01-02 03:04 UTC, id a0"
    ]
