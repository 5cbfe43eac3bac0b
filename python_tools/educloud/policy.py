"""The policies/ files: load them, validate them, and say exactly what is wrong.

Each file is checked against its JSON schema (policies/schemas/), then against the
others (an egress destination in a country hosting.yml does not allow, a guarantee
without a check). Problems name the file, the path inside it and what is wrong, so an
operator editing their own copy of the policies can fix them without reading code.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from educloud.errors import EducloudError
from educloud.paths import policies_dir, repo_root

# libyaml's loader when PyYAML has it (its wheels do): the policies and every role's
# defaults are read at each verification's start, in the parent and in its pytest run.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _safe_load(text: str) -> Any:
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader, C or Python


POLICY_FILES = ("charter", "retention", "egress", "hosting")
TECHNICAL = "technical"


@dataclass(frozen=True)
class Problem:
    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path or '(top)'}: {self.message}"


class PolicyError(EducloudError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n  ".join(str(p) for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the policies:\n  {lines}")


@dataclass(frozen=True)
class Control:
    role: str
    variables: tuple[str, ...]


@dataclass(frozen=True)
class Guarantee:
    id: str
    title: str
    text: str
    nature: tuple[str, ...]
    controls: tuple[Control, ...]
    checks: tuple[str, ...]
    attestation: str = ""
    # Checks (among `checks`) that read a declaration only (inventory, policy files) and
    # observe nothing on a host: they can never make the guarantee "vérifié" on their own.
    declarations: tuple[str, ...] = ()

    @property
    def technical(self) -> bool:
        return TECHNICAL in self.nature


@dataclass(frozen=True)
class Destination:
    name: str
    purpose: str
    description: str
    address: str
    port: int
    protocol: str
    country: str


@dataclass(frozen=True)
class Provider:
    id: str
    name: str
    country: str
    datacenters: tuple[str, ...]
    test_only: bool = False


@dataclass(frozen=True)
class Policies:
    directory: Path
    guarantees: tuple[Guarantee, ...]
    retention: Mapping[str, Mapping[str, Any]]
    destinations: tuple[Destination, ...]
    countries_allowed: tuple[str, ...]
    providers: tuple[Provider, ...]
    host_declaration_keys: tuple[str, ...]
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    def guarantee(self, guarantee_id: str) -> Guarantee:
        for guarantee in self.guarantees:
            if guarantee.id == guarantee_id:
                return guarantee
        raise KeyError(guarantee_id)


def schemas_dir(directory: Path) -> Path:
    """An operator's policy copy may omit schemas/: the repository's ones then apply."""
    own = directory / "schemas"
    return own if own.is_dir() else policies_dir() / "schemas"


def _json_path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _read(directory: Path, name: str, problems: list[Problem]) -> Any:
    path = directory / f"{name}.yml"
    label = f"{directory.name}/{path.name}"
    if not path.is_file():
        problems.append(Problem(label, "", "file is missing"))
        return None
    try:
        data = _safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        problems.append(Problem(label, "", f"not valid YAML: {exc}".replace("\n", " ")))
        return None
    schema = json.loads((schemas_dir(directory) / f"{name}.schema.json").read_text("utf-8"))
    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    for error in errors:
        problems.append(Problem(label, _json_path(error.absolute_path), error.message))
    return None if errors else data


def _role_variables(role: str) -> set[str] | None:
    defaults = repo_root() / "roles" / role / "defaults" / "main.yml"
    if not defaults.is_file():
        return None
    data = _safe_load(defaults.read_text(encoding="utf-8")) or {}
    return set(data)


def _cross_check(policies: Policies, problems: list[Problem]) -> None:
    charter = f"{policies.directory.name}/charter.yml"
    seen: set[str] = set()
    for index, guarantee in enumerate(policies.guarantees):
        where = f"guarantees[{index}]"
        if guarantee.id in seen:
            problems.append(Problem(charter, f"{where}.id", f"{guarantee.id} is listed twice"))
        seen.add(guarantee.id)
        if guarantee.technical and not guarantee.checks:
            problems.append(
                Problem(
                    charter,
                    f"{where}.checks",
                    f"{guarantee.id} is technical but no check proves it "
                    "(add a test, or mark it organisational, contractual or declared)",
                )
            )
        for check in sorted(set(guarantee.declarations) - set(guarantee.checks)):
            problems.append(
                Problem(
                    charter,
                    f"{where}.declarations",
                    f"{check} is a declaration of {guarantee.id} but not one of its checks",
                )
            )
        if set(guarantee.nature) != {TECHNICAL} and not guarantee.attestation:
            problems.append(
                Problem(
                    charter,
                    f"{where}.attestation",
                    f"{guarantee.id} is not purely technical: say what the operator attests",
                )
            )
        for c_index, control in enumerate(guarantee.controls):
            if not (repo_root() / "roles").is_dir():
                # Installed on a server (the retention timer): no roles to compare with;
                # the checkout the roles were deployed from validated these references.
                break
            known = _role_variables(control.role)
            if known is None:
                problems.append(
                    Problem(
                        charter,
                        f"{where}.controls[{c_index}].role",
                        f"no role named {control.role} (roles/{control.role}/defaults/main.yml)",
                    )
                )
                continue
            for variable in control.variables:
                # educloud_* are the deployment's own settings, not a role's; the educloud_tool
                # role's variables share that prefix and are checked like any role's.
                shared = variable.startswith("educloud_") and not variable.startswith(
                    f"{control.role}_"
                )
                if not shared and variable not in known:
                    problems.append(
                        Problem(
                            charter,
                            f"{where}.controls[{c_index}].variables",
                            f"{variable} is not defined in roles/{control.role}/defaults/main.yml",
                        )
                    )
    _check_backup_horizons(policies, problems)
    _check_idle_periods(policies, problems)
    egress = f"{policies.directory.name}/egress.yml"
    for index, destination in enumerate(policies.destinations):
        if destination.country not in policies.countries_allowed:
            problems.append(
                Problem(
                    egress,
                    f"destinations[{index}].country",
                    f"{destination.country} is not in hosting.yml countries_allowed "
                    f"{list(policies.countries_allowed)}",
                )
            )
        try:
            ipaddress.ip_network(destination.address, strict=False)
        except ValueError:
            problems.append(
                Problem(
                    egress,
                    f"destinations[{index}].address",
                    f"{destination.address!r} is not an IP address or network "
                    "(a firewall cannot follow DNS names)",
                )
            )
    hosting = f"{policies.directory.name}/hosting.yml"
    for index, provider in enumerate(policies.providers):
        if provider.country not in policies.countries_allowed:
            problems.append(
                Problem(
                    hosting,
                    f"providers[{index}].country",
                    f"{provider.country} is not in countries_allowed",
                )
            )


def backup_keep_days(keep: Mapping[str, int]) -> dict[str, int]:
    """The horizons, in days, of a backup category's `keep` (restic --keep-within-*)."""
    return {
        "daily": int(keep["daily"]),
        "weekly": int(keep["weekly"]) * 7,
        "monthly": int(keep["monthly"]) * 30,
    }


def role_variables(retention: Mapping[str, Any], hosting: Mapping[str, Any]) -> dict[str, Any]:
    """The role variables the retention and hosting policies decide, from those two files'
    contents (retention.yml, hosting.yml as read).

    The one place they are computed: ansible/group_vars/all/policies.yml sets them through
    the `educloud_role_variables` filter (ansible/filter_plugins/educloud_policy.py); the
    transparency documents and the roles' host checks call this function.
    """
    categories: Mapping[str, Any] = retention.get("categories") or {}

    def rule(name: str) -> Mapping[str, Any]:
        found = categories.get(name)
        if not isinstance(found, Mapping):
            raise EducloudError(
                f"retention.yml: categories.{name} is missing (the roles' periods need it)"
            )
        return found

    def days(name: str) -> int:
        return int(rule(name)["retention_days"])

    keep = backup_keep_days(rule("backups")["keep"])
    countries = list(hosting["countries_allowed"])
    providers = list(hosting["providers"])
    return {
        # C1: where hosts may run.
        "common_hosting_countries": countries,
        "common_hosting_providers": providers,
        "common_hosting_required_keys": list(hosting["host_declaration"]["required"]),
        # C7: the periods each role enforces.
        "common_journald_max_retention": f"{days('system_logs')}day",
        "common_logrotate_maxage_days": days("web_logs"),
        "common_log_files_max_age_days": min(days("system_logs"), days("web_logs")),
        "keycloak_realm_events_expiration_days": days("login_events"),
        "keycloak_realm_admin_events_expiration_days": days("admin_events"),
        "keycloak_realm_offline_session_max_lifespan_days": days("offline_sessions"),
        "keycloak_realm_offline_session_idle_days": int(rule("offline_sessions")["idle_days"]),
        "nextcloud_trashbin_retention_days": days("deleted_files"),
        "nextcloud_versions_retention_days": days("file_versions"),
        "nextcloud_activity_expire_days": days("activity"),
        "nextcloud_log_retention_days": days("system_logs"),
        "nextcloud_objectstore_hosting_countries": countries,
        "reporting_retention_days": days("illicit_content_reports"),
        # C1, C7, C10: backups (restic forget --keep-within-*, in days).
        "backup_retention_days": days("backups"),
        "backup_keep_daily_days": keep["daily"],
        "backup_keep_weekly_days": keep["weekly"],
        "backup_keep_monthly_days": keep["monthly"],
        "backup_hosting_countries": countries,
        # C6: the privacy notice states the periods and where the data is hosted.
        "reverse_proxy_privacy_retention_categories": {
            name: dict(value) for name, value in categories.items()
        },
        "reverse_proxy_privacy_hosting_providers": providers,
    }


def policy_role_variables(policies: Policies) -> dict[str, Any]:
    """`role_variables` of loaded policies."""
    return role_variables(policies.raw["retention"], policies.raw["hosting"])


# Where the deploy records the policies it applied, on every host (site.yml's last play,
# roles/common/tasks/policies.yml); `educloud verify` compares it with its own copy.
APPLIED_RECORD = "/etc/educloud/policies-applied.json"


def fingerprint(directory: Path) -> dict[str, str]:
    """Each policy file of `directory` (its *.yml, not the schemas) to its SHA-256."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.glob("*.yml"))
        if path.is_file()
    }


def fingerprint_differences(mine: Mapping[str, str], deployed: Mapping[str, str]) -> list[str]:
    """The files whose contents differ between two fingerprints, each with how."""
    found = []
    for name in sorted(set(mine) | set(deployed)):
        if name not in deployed:
            found.append(f"{name} (not deployed)")
        elif name not in mine:
            found.append(f"{name} (deployed, absent here)")
        elif mine[name] != deployed[name]:
            found.append(f"{name} (differs)")
    return found


def _check_backup_horizons(policies: Policies, problems: list[Problem]) -> None:
    # A snapshot kept for its week or its month must still expire on time (C7).
    retention = f"{policies.directory.name}/retention.yml"
    for name, category in policies.retention.items():
        keep = category.get("keep")
        if not isinstance(keep, Mapping):
            continue
        for horizon, days in backup_keep_days(keep).items():
            if days > int(category["retention_days"]):
                problems.append(
                    Problem(
                        retention,
                        f"categories.{name}.keep.{horizon}",
                        f"keeps {horizon} snapshots for {days} days, past retention_days "
                        f"({category['retention_days']})",
                    )
                )


def _check_idle_periods(policies: Policies, problems: list[Problem]) -> None:
    # A session unused for idle_days goes earlier, never later, than its retention (C7).
    retention = f"{policies.directory.name}/retention.yml"
    for name, category in policies.retention.items():
        idle = category.get("idle_days")
        if isinstance(idle, int) and idle > int(category["retention_days"]):
            problems.append(
                Problem(
                    retention,
                    f"categories.{name}.idle_days",
                    f"{idle} days is past retention_days ({category['retention_days']})",
                )
            )


def load(directory: Path | None = None) -> Policies:
    """Read and validate every policy file; raise PolicyError listing all problems."""
    directory = (directory or policies_dir()).resolve()
    problems: list[Problem] = []
    raw = {name: _read(directory, name, problems) for name in POLICY_FILES}
    if problems:
        raise PolicyError(problems)
    policies = Policies(
        directory=directory,
        guarantees=tuple(
            Guarantee(
                id=g["id"],
                title=g["title"],
                text=g["text"],
                nature=tuple(g["nature"]),
                controls=tuple(Control(c["role"], tuple(c["variables"])) for c in g["controls"]),
                checks=tuple(g["checks"]),
                attestation=g.get("attestation", ""),
                declarations=tuple(g.get("declarations", [])),
            )
            for g in raw["charter"]["guarantees"]
        ),
        retention=raw["retention"]["categories"],
        destinations=tuple(Destination(**d) for d in raw["egress"]["destinations"]),
        countries_allowed=tuple(raw["hosting"]["countries_allowed"]),
        providers=tuple(
            Provider(
                id=p["id"],
                name=p["name"],
                country=p["country"],
                datacenters=tuple(p["datacenters"]),
                test_only=p.get("test_only", False),
            )
            for p in raw["hosting"]["providers"]
        ),
        host_declaration_keys=tuple(raw["hosting"]["host_declaration"]["required"]),
        raw=raw,
    )
    _cross_check(policies, problems)
    if problems:
        raise PolicyError(problems)
    return policies


def hosting_problems(policies: Policies, declaration: Any) -> list[str]:
    """What is wrong with one host's `educloud_hosting` declaration (empty when approved)."""
    if not isinstance(declaration, Mapping):
        return [
            "educloud_hosting is not set: declare provider, country and datacenter "
            "(see policies/hosting.yml)"
        ]
    missing = [key for key in policies.host_declaration_keys if not declaration.get(key)]
    if missing:
        return [f"educloud_hosting lacks {', '.join(missing)}"]
    problems = []
    country = declaration["country"]
    if country not in policies.countries_allowed:
        problems.append(
            f"country {country} is not allowed (allowed: {', '.join(policies.countries_allowed)})"
        )
    provider = next((p for p in policies.providers if p.id == declaration["provider"]), None)
    if provider is None:
        known = ", ".join(p.id for p in policies.providers)
        problems.append(f"provider {declaration['provider']} is not approved (approved: {known})")
    else:
        if provider.country != country:
            problems.append(
                f"provider {provider.id} is approved in {provider.country}, not {country}"
            )
        if declaration["datacenter"] not in provider.datacenters:
            problems.append(
                f"datacenter {declaration['datacenter']} is not one of {provider.id}'s "
                f"({', '.join(provider.datacenters)})"
            )
    return problems


def charter_test_problems(
    policies: Policies, markers: Mapping[str, frozenset[str]]
) -> list[Problem]:
    """Compare charter.yml's checks with the tests' charter markers, both ways.

    `markers` maps each collected check id (file::function) to the guarantee ids its
    `pytest.mark.charter` names.
    """
    charter = f"{policies.directory.name}/charter.yml"
    ids = {g.id for g in policies.guarantees}
    problems = []
    for index, guarantee in enumerate(policies.guarantees):
        for check in guarantee.checks:
            if check not in markers:
                problems.append(
                    Problem(charter, f"guarantees[{index}].checks", f"no test named {check}")
                )
            elif guarantee.id not in markers[check]:
                problems.append(
                    Problem(
                        charter,
                        f"guarantees[{index}].checks",
                        f"{check} does not carry the marker charter({guarantee.id!r})",
                    )
                )
    for check, named in sorted(markers.items()):
        for guarantee_id in sorted(named - ids):
            problems.append(
                Problem(
                    f"tests/charter/{check}", "", f"marker names {guarantee_id}, not in the charter"
                )
            )
        for guarantee_id in sorted(named & ids):
            if check not in policies.guarantee(guarantee_id).checks:
                problems.append(
                    Problem(
                        f"tests/charter/{check}",
                        "",
                        f"marked {guarantee_id} but not listed in that guarantee's checks",
                    )
                )
        if not named:
            problems.append(Problem(f"tests/charter/{check}", "", "no charter marker"))
    return problems


STATISTICS_FILE = "statistics"
DEFAULT_SMALL_COUNT_THRESHOLD = 10
DEFAULT_ACTIVE_DAYS = 30


@dataclass(frozen=True)
class StatisticsPolicy:
    """policies/statistics.yml (C12): how small a count may be printed, what "active" means."""

    small_count_threshold: int = DEFAULT_SMALL_COUNT_THRESHOLD
    active_days: int = DEFAULT_ACTIVE_DAYS


def _read_optional(directory: Path | None, name: str) -> Any:
    """A policy file kept apart from `load` (an operator's older copy may lack it): None
    when absent, its validated data otherwise; invalid, a PolicyError naming what."""
    directory = (directory or policies_dir()).resolve()
    if not (directory / f"{name}.yml").is_file():
        return None
    problems: list[Problem] = []
    data = _read(directory, name, problems)
    if problems:
        raise PolicyError(problems)
    return data


def load_statistics(directory: Path | None = None) -> StatisticsPolicy:
    """Read and validate statistics.yml; a policy copy without the file gets the defaults.

    Kept apart from `load` so that an operator's older copy of policies/ stays valid.
    """
    data = _read_optional(directory, STATISTICS_FILE)
    if data is None:
        return StatisticsPolicy()
    return StatisticsPolicy(
        small_count_threshold=data["small_count_threshold"], active_days=data["active_days"]
    )


SECURITY_FILE = "security"
DEFAULT_MAX_PENDING_DAYS = 7


@dataclass(frozen=True)
class SecurityUpdatesPolicy:
    """policies/security.yml (C10): how long a security update may wait on a server."""

    max_pending_days: int = DEFAULT_MAX_PENDING_DAYS


def load_security(directory: Path | None = None) -> SecurityUpdatesPolicy:
    """Read and validate security.yml; a policy copy without the file gets the defaults
    (kept apart from `load`, like statistics.yml, so that an older copy stays valid)."""
    data = _read_optional(directory, SECURITY_FILE)
    if data is None:
        return SecurityUpdatesPolicy()
    return SecurityUpdatesPolicy(max_pending_days=data["security_updates"]["max_pending_days"])
