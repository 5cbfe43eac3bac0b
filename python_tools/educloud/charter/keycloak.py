"""Keycloak settings and records that carry charter guarantees (C2, C4, C5, C7, C10, C12).

Each function reads the admin API's JSON (a realm, its identity providers, a flow's
executions, its events) or the inventory's `keycloak_realms`, and returns the problems,
so a unit test can feed a broken realm.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

LOCAL_EVENT_LISTENERS = frozenset({"jboss-logging"})
DAY = 86400


def event_listener_problems(realm: dict[str, Any]) -> list[str]:
    listeners = set(realm.get("eventsListeners") or [])
    extra = sorted(listeners - LOCAL_EVENT_LISTENERS)
    return [f"events are sent to listener(s) {', '.join(extra)}"] if extra else []


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


# --- Identity providers (C2, C4, C5): an allow-list read from the inventory ---------------

_URL = re.compile(r"https?://[^\s\"'<>,;]+", re.IGNORECASE)


def is_templated(value: object) -> bool:
    """A Jinja expression Ansible renders at deploy time: its value is unknown here."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def config_urls(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every http(s) URL in a provider's config, with its key, in key order."""
    return [
        (key, url)
        for key, value in sorted(config.items())
        if isinstance(value, str) and not is_templated(value)
        for url in _URL.findall(value)
    ]


def url_host(url: str) -> str | None:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host.lower().rstrip(".") if host else None


def _looks_like_url(key: str, value: str) -> bool:
    return "://" in value or key.lower().endswith(("url", "uri")) or key == "issuer"


@dataclass(frozen=True)
class DeclaredProvider:
    """An identity provider the inventory declares (keycloak_realms[].identity_providers)."""

    alias: str
    provider_id: str
    hosts: frozenset[str]  # hosts of its literal URLs: the only ones it may point at
    templated: tuple[str, ...] = ()  # config keys holding a templated URL (host unknown)

    @property
    def matchable(self) -> bool:
        return not is_templated(self.alias) and not is_templated(self.provider_id)


def declared_identity_providers(realms: object) -> dict[str, tuple[DeclaredProvider, ...]]:
    """The identity providers each realm of the inventory's `keycloak_realms` declares."""
    declared: dict[str, tuple[DeclaredProvider, ...]] = {}
    for realm in realms if isinstance(realms, list) else []:
        if not isinstance(realm, Mapping) or not isinstance(realm.get("name"), str):
            continue
        providers = []
        for entry in realm.get("identity_providers") or []:
            if not isinstance(entry, Mapping):
                continue
            config = entry.get("config")
            config = config if isinstance(config, Mapping) else {}
            hosts = {url_host(url) for _, url in config_urls(config)}
            templated = tuple(
                key
                for key, value in sorted(config.items())
                if is_templated(value) and _looks_like_url(key, str(value))
            )
            providers.append(
                DeclaredProvider(
                    alias=str(entry.get("alias", "")),
                    provider_id=str(entry.get("provider_id", entry.get("providerId", ""))),
                    hosts=frozenset(h for h in hosts if h),
                    templated=templated,
                )
            )
        declared[realm["name"]] = tuple(providers)
    return declared


def describe_provider(provider: Mapping[str, Any]) -> str:
    """'alias (type, enabled|disabled, hosts a, b)', for messages and evidence."""
    state = "enabled" if provider.get("enabled", True) else "disabled"
    hosts = sorted({url_host(url) or url for _, url in config_urls(provider.get("config") or {})})
    where = f", hosts {', '.join(hosts)}" if hosts else ""
    return f"{provider.get('alias')} ({provider.get('providerId')}, {state}{where})"


def identity_provider_problems(
    realm: str, providers: Iterable[Mapping[str, Any]], declared: Sequence[DeclaredProvider]
) -> list[str]:
    """Every provider on the server must be declared, of its declared type, and point only
    at hosts its declared URLs name; enabled or not, whatever its type."""
    by_alias = {d.alias: d for d in declared if d.matchable}
    unmatchable = [d.alias for d in declared if not d.matchable]
    problems = []
    for provider in providers:
        alias = str(provider.get("alias"))
        declaration = by_alias.get(alias)
        if declaration is None:
            note = (
                f" (the inventory's {', '.join(unmatchable)} cannot be matched: Jinja templates)"
                if unmatchable
                else ""
            )
            problems.append(
                f"realm {realm}: identity provider {describe_provider(provider)} is not declared "
                f"in the inventory (keycloak_realms[].identity_providers){note}"
            )
            continue
        if provider.get("providerId") != declaration.provider_id:
            problems.append(
                f"realm {realm}: identity provider {alias} is of type "
                f"{provider.get('providerId')}, the inventory declares {declaration.provider_id}"
            )
        for key, url in config_urls(provider.get("config") or {}):
            host = url_host(url)
            if host in declaration.hosts:
                continue
            approved = ", ".join(sorted(declaration.hosts)) or "none"
            unknown = (
                f"; the inventory gives {', '.join(declaration.templated)} as Jinja "
                "templates, whose hosts cannot be approved"
                if declaration.templated
                else ""
            )
            problems.append(
                f"realm {realm}: identity provider {alias}: {key} points at "
                f"{host or url}, not a host the inventory declares for it ({approved}){unknown}"
            )
    return problems


# --- Administrators' second factor (C10): the flows actually bound ------------------------

OTP_STEPS = {
    "browser": frozenset({"auth-otp-form"}),
    "direct_grant": frozenset({"direct-grant-validate-otp"}),
}
# Browser alternatives that cannot finish a first login by themselves: an existing session
# (opened through this flow), a redirect to an identity provider (test_identity_providers_declared).
SESSION_ALTERNATIVES = frozenset({"auth-cookie", "identity-provider-redirector"})
ROLE_CONDITION = "conditional-user-role"
BINDING_LABELS = {"browser": "browser", "direct_grant": "direct grant"}


@dataclass(frozen=True)
class FlowBinding:
    """A flow Keycloak runs for a login: bound by the realm or by a client's override."""

    binding: str  # "browser" or "direct_grant"
    flow: str  # the flow's alias
    realm: str
    client: str | None = None  # the client whose override binds it; None: the realm's own

    @property
    def bound_by(self) -> str:
        realm = f"realm {self.realm}"
        return f"client {self.client} of {realm}" if self.client else realm

    @property
    def french(self) -> str:
        realm = f"royaume {self.realm}"
        return f"client {self.client} du {realm}" if self.client else realm


def flow_bindings(
    realm: Mapping[str, Any],
    clients: Iterable[Mapping[str, Any]],
    flows: Iterable[Mapping[str, Any]],
) -> tuple[list[FlowBinding], list[str]]:
    """The browser and direct grant flows of a realm and of every client that overrides
    them (overrides name a flow by id), and the overrides that name no flow."""
    name = str(realm.get("realm"))
    aliases = {f.get("id"): str(f.get("alias")) for f in flows}
    bindings = [
        FlowBinding("browser", str(realm.get("browserFlow") or "browser"), name),
        FlowBinding("direct_grant", str(realm.get("directGrantFlow") or "direct grant"), name),
    ]
    problems = []
    for client in clients:
        overrides = client.get("authenticationFlowBindingOverrides") or {}
        for binding, flow_id in sorted(overrides.items()):
            if binding not in OTP_STEPS or not flow_id:
                continue
            if flow_id in aliases:
                bindings.append(
                    FlowBinding(binding, aliases[flow_id], name, str(client.get("clientId")))
                )
            else:
                problems.append(
                    f"client {client.get('clientId')} of realm {name} overrides its {binding} "
                    f"flow with unknown flow {flow_id}"
                )
    return bindings, problems


@dataclass
class FlowStep:
    """One execution of a flow, with the executions of its subflow."""

    execution: Mapping[str, Any]
    children: list[FlowStep] = field(default_factory=list)

    @property
    def requirement(self) -> str:
        return str(self.execution.get("requirement") or "DISABLED").upper()

    @property
    def is_flow(self) -> bool:
        return bool(self.execution.get("authenticationFlow"))

    @property
    def provider(self) -> str:
        return str(self.execution.get("providerId") or "")

    @property
    def is_condition(self) -> bool:
        return not self.is_flow and self.provider.startswith("conditional-")

    @property
    def label(self) -> str:
        name = self.execution.get("displayName") or self.execution.get("alias") or self.provider
        return f"subflow '{name}'" if self.is_flow else f"'{name}' ({self.provider})"


def flow_tree(executions: Iterable[Mapping[str, Any]]) -> list[FlowStep]:
    """The admin API's flat, depth-first executions list (level, index) as a tree."""
    roots: list[FlowStep] = []
    last: list[FlowStep] = []  # the latest step seen at each level
    for execution in executions:
        level = int(execution.get("level", 0))
        if level > len(last) or (level > 0 and not last[level - 1].is_flow):
            raise ValueError(f"execution {execution.get('displayName')} has no parent subflow")
        step = FlowStep(execution)
        (last[level - 1].children if level else roots).append(step)
        del last[level:]
        last.append(step)
    for step in [*roots, *_descendants(roots)]:
        step.children.sort(key=lambda s: int(s.execution.get("index", 0)))
    roots.sort(key=lambda s: int(s.execution.get("index", 0)))
    return roots


def _descendants(steps: Iterable[FlowStep]) -> list[FlowStep]:
    found = []
    for step in steps:
        found += [*step.children, *_descendants(step.children)]
    return found


@dataclass(frozen=True)
class _Context:
    otp: frozenset[str]
    admin_role: str
    configs: Mapping[str, Mapping[str, Any]]


def _holds_otp(step: FlowStep, ctx: _Context) -> bool:
    return step.provider in ctx.otp or any(_holds_otp(c, ctx) for c in step.children)


def _condition_gaps(subflow: FlowStep, ctx: _Context) -> list[str]:
    """Why a CONDITIONAL subflow may be skipped for an administrator ([] when it cannot)."""
    conditions = [c for c in subflow.children if c.is_condition and c.requirement != "DISABLED"]
    if not conditions:
        return [f"{subflow.label} is CONDITIONAL without an active condition: Keycloak skips it"]
    gaps = []
    for condition in conditions:
        if condition.provider != ROLE_CONDITION:
            gaps.append(f"{subflow.label} also depends on the condition {condition.provider}")
            continue
        config_id = str(condition.execution.get("authenticationConfig") or "")
        config = ctx.configs.get(config_id, {}).get("config") or {}
        role = config.get("condUserRole")
        if role != ctx.admin_role:
            gaps.append(
                f"{subflow.label} is conditioned on the role {role or '(none)'}, "
                f"not on {ctx.admin_role}"
            )
        elif str(config.get("negate", "false")).lower() == "true":
            gaps.append(f"{subflow.label} applies to users without the role {ctx.admin_role}")
    return gaps


def _step_gaps(step: FlowStep, ctx: _Context) -> list[str]:
    """Why this step may succeed for an administrator without an OTP ([] when it cannot)."""
    if step.requirement == "DISABLED":
        return [f"{step.label} is DISABLED"]
    if not step.is_flow:
        if step.provider not in ctx.otp:
            return [f"{step.label} is not an OTP step"]
        if step.requirement != "REQUIRED":
            return [f"the OTP step {step.label} is {step.requirement}: skipped without an OTP"]
        return []
    if step.requirement == "CONDITIONAL":
        gaps = _condition_gaps(step, ctx)
        if gaps:
            return gaps
    return [f"in {step.label}: {gap}" for gap in _flow_gaps(step.children, ctx)]


def _flow_gaps(steps: Sequence[FlowStep], ctx: _Context) -> list[str]:
    """Why a flow made of these steps may complete for an administrator without an OTP.

    Keycloak runs every REQUIRED and CONDITIONAL step of a flow and then ignores its
    ALTERNATIVE ones; only a flow without them runs its alternatives, any one of which
    completes it."""
    runnable = [s for s in steps if not s.is_condition]
    mandatory = [s for s in runnable if s.requirement in ("REQUIRED", "CONDITIONAL")]
    gaps: list[str] = []
    if mandatory:
        for step in mandatory:
            step_gaps = _step_gaps(step, ctx)
            if not step_gaps:
                return []
            if _holds_otp(step, ctx):
                gaps += step_gaps
        gaps += [
            f"{s.label} is ALTERNATIVE beside REQUIRED steps: Keycloak never runs it"
            for s in runnable
            if s.requirement == "ALTERNATIVE" and _holds_otp(s, ctx)
        ]
    else:
        enforced = False
        for step in (s for s in runnable if s.requirement == "ALTERNATIVE"):
            if not step.is_flow and step.provider in SESSION_ALTERNATIVES:
                continue
            step_gaps = _step_gaps(step, ctx)
            if not step_gaps:
                enforced = True
            elif _holds_otp(step, ctx):
                gaps += step_gaps
            else:
                gaps.append(f"the alternative {step.label} completes the login without an OTP")
        if enforced and not gaps:
            return []
    gaps += [
        f"{s.label} is DISABLED"
        for s in runnable
        if s.requirement == "DISABLED" and _holds_otp(s, ctx)
    ]
    return gaps or [f"no OTP step ({', '.join(sorted(ctx.otp))})"]


def admin_otp_problems(
    binding: FlowBinding,
    executions: Iterable[Mapping[str, Any]],
    configs: Mapping[str, Mapping[str, Any]],
    admin_role: str,
) -> list[str]:
    """The bound flow must run an OTP step, REQUIRED, for every holder of the admin role:
    directly, or in a CONDITIONAL subflow whose only conditions are that role."""
    where = f"{binding.bound_by}: {BINDING_LABELS[binding.binding]} flow '{binding.flow}'"
    try:
        tree = flow_tree(executions)
    except ValueError as error:
        return [f"{where}: {error}"]
    ctx = _Context(OTP_STEPS[binding.binding], admin_role, configs)
    return [f"{where}: {gap}" for gap in _flow_gaps(tree, ctx)]


def describe_flow(executions: Iterable[Mapping[str, Any]]) -> str:
    """'Cookie ALTERNATIVE, > OTP Form REQUIRED', one '>' per level, for the evidence."""
    return ", ".join(
        ">" * int(e.get("level", 0))
        + f"{e.get('displayName') or e.get('providerId')} {e.get('requirement')}"
        for e in executions
    )


# --- Behaviour of the login (C10) ---------------------------------------------------------

_OTP_FORM = re.compile(r"""<input[^>]*\bname=["']otp["']""", re.IGNORECASE)
_OTP_SETUP = re.compile(
    r"""kc-totp-settings|<input[^>]*\bname=["']totp["']|<input[^>]*\bid=["']totp["']""",
    re.IGNORECASE,
)


def otp_page(page: str) -> str | None:
    """'otp' for Keycloak's one-time code form, 'otp-setup' for its OTP setup page."""
    if _OTP_SETUP.search(page):
        return "otp-setup"
    if _OTP_FORM.search(page):
        return "otp"
    return None


def login_redirect_uri(client: Mapping[str, Any], public_url: str) -> str | None:
    """A redirect URI Keycloak accepts for the client's browser login, None without one."""
    root = str(client.get("rootUrl") or "").replace("${authBaseUrl}", public_url.rstrip("/"))
    for uri in map(str, client.get("redirectUris") or []):
        if uri == "+":  # "the web origins": no URI of its own
            continue
        absolute = uri if uri.startswith(("http://", "https://")) else root.rstrip("/") + uri
        absolute = absolute.removesuffix("*")
        if absolute.startswith(("http://", "https://")) and "*" not in absolute:
            return absolute
    return None


# --- Retention observed (C7) ---------------------------------------------------------------

# Keycloak deletes expired events in an hourly job; one day of grace covers it.
EXPIRY_GRACE = timedelta(days=1)


def retention_cutoff(now: datetime, days: int) -> datetime:
    """Events older than this must be gone: the policy's period plus the grace."""
    return now - timedelta(days=days) - EXPIRY_GRACE


def old_event_problems(
    kind: str, events: Iterable[Mapping[str, Any]], cutoff: datetime, days: int
) -> list[str]:
    """Events Keycloak still returns from before the cutoff, naming the oldest."""
    cutoff_ms = int(cutoff.timestamp() * 1000)
    old = [e for e in events if isinstance(e.get("time"), int) and e["time"] < cutoff_ms]
    if not old:
        return []
    oldest = min(old, key=lambda e: int(e["time"]))
    when = datetime.fromtimestamp(oldest["time"] / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    what = oldest.get("type") or oldest.get("operationType") or "event"
    return [
        f"Keycloak still returns {kind} older than the policy's {days} days (and a day of "
        f"grace): the oldest is {what} of {when}, id {oldest.get('id')}"
    ]
