"""Keycloak realm settings that carry charter guarantees (C4, C7, C10, C12).

Each function reads the admin API's JSON (a realm, its identity providers, a flow's
executions) and returns the problems, so a unit test can feed a broken realm.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

LOCAL_EVENT_LISTENERS = frozenset({"jboss-logging"})
# Providers whose identities are held by an advertising or foreign platform.
SOCIAL_PROVIDERS = frozenset(
    {
        "google",
        "facebook",
        "github",
        "gitlab",
        "microsoft",
        "linkedin-openid-connect",
        "instagram",
        "twitter",
        "stackoverflow",
        "paypal",
        "bitbucket",
        "openshift-v4",
        "apple",
    }
)
DAY = 86400


def event_listener_problems(realm: dict[str, Any]) -> list[str]:
    listeners = set(realm.get("eventsListeners") or [])
    extra = sorted(listeners - LOCAL_EVENT_LISTENERS)
    return [f"events are sent to listener(s) {', '.join(extra)}"] if extra else []


def identity_provider_problems(providers: Iterable[dict[str, Any]]) -> list[str]:
    return [
        f"identity provider {p.get('alias')} is a third-party platform ({p.get('providerId')})"
        for p in providers
        if p.get("providerId") in SOCIAL_PROVIDERS and p.get("enabled", True)
    ]


def events_expiration_problems(realm: dict[str, Any], days: int) -> list[str]:
    problems = []
    if not realm.get("eventsEnabled"):
        problems.append("login events are not recorded")
    expiration = realm.get("eventsExpiration")
    if expiration != days * DAY:
        problems.append(f"login events expire after {expiration} s, the policy says {days * DAY} s")
    return problems


def admin_events_expiration_problems(realm: dict[str, Any], days: int) -> list[str]:
    problems = []
    if not realm.get("adminEventsEnabled"):
        problems.append("admin events are not recorded")
    expiration = (realm.get("attributes") or {}).get("adminEventsExpiration")
    if str(expiration) != str(days * DAY):
        problems.append(f"admin events expire after {expiration} s, the policy says {days * DAY} s")
    return problems


def brute_force_problems(realm: dict[str, Any], max_failures: int = 10) -> list[str]:
    if not realm.get("bruteForceProtected"):
        return ["brute-force protection is off"]
    failures = int(realm.get("failureFactor") or 0)
    if failures < 1 or failures > max_failures:
        return [f"accounts lock after {failures} failures (expected 1..{max_failures})"]
    return []


def admin_otp_problems(executions: Iterable[dict[str, Any]]) -> list[str]:
    """The browser flow must demand OTP under a condition on the administrators' role."""
    steps = list(executions)
    otp = [e for e in steps if e.get("providerId") == "auth-otp-form"]
    role_condition = [e for e in steps if e.get("providerId") == "conditional-user-role"]
    if not otp or not role_condition:
        return ["the browser flow has no OTP step conditioned on the administrators' role"]
    if all(e.get("requirement") != "REQUIRED" for e in otp):
        return ["the OTP step of the browser flow is not REQUIRED"]
    return []
