"""Which services each inventory group runs, and with which privileges (C10, least privilege)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ExpectedService:
    unit: str
    user: str  # the account its working processes must run as (never root)
    workers: bool = False  # True when a root master forks workers (nginx)


def expected_services(groups: Iterable[str], variables: Mapping[str, Any]) -> list[ExpectedService]:
    services = []
    if "postgresql" in groups and variables.get("postgresql_patroni_enabled"):
        # Patroni runs as postgres and starts PostgreSQL itself (regional topology).
        services.append(ExpectedService("patroni", "postgres"))
    elif "postgresql" in groups:
        version = str(variables.get("postgresql_version", "15"))
        services.append(ExpectedService(f"postgresql@{version}-main", "postgres"))
    if "etcd" in groups:
        services.append(ExpectedService("etcd", "etcd"))
    if "redis" in groups:
        # The redis role's: a single server's own Redis (redis_mode local) runs no Sentinel.
        services.append(ExpectedService("redis-server", "redis"))
        if variables.get("redis_mode", "replicated") != "local":
            services.append(ExpectedService("redis-sentinel", "redis"))
    if "load_balancer" in groups:
        # HAProxy's master process runs as root and its worker as haproxy (Debian's unit).
        services.append(ExpectedService("haproxy", "haproxy", workers=True))
    if "keycloak" in groups:
        services.append(
            ExpectedService("keycloak", str(variables.get("keycloak_user", "keycloak")))
        )
    if "reverse_proxy" in groups or "nextcloud" in groups:
        services.append(ExpectedService("nginx", "www-data", workers=True))
    if "nextcloud" in groups:
        # PHP-FPM's master runs as root and forks the pool's workers as the nextcloud user.
        version = str(variables.get("nextcloud_php_version", "8.2"))
        nextcloud_user = str(variables.get("nextcloud_user", "nextcloud"))
        services.append(ExpectedService(f"php{version}-fpm", nextcloud_user, workers=True))
    if "data_rights" in groups:
        # The reporting role's service: gunicorn's master and workers all run as its account
        # (User= in the unit).
        reports_user = str(variables.get("reporting_user", "educloud-reports"))
        services.append(ExpectedService("educloud-reports", reports_user))
    return services


def service_problems(service: ExpectedService, active: str, users: list[str]) -> list[str]:
    """`users`: the accounts of the service's working processes."""
    if active != "active":
        return [f"{service.unit} is {active or 'unknown'}"]
    if not users:
        return [f"{service.unit} has no running process"]
    wrong = sorted({u for u in users if u != service.user})
    return [f"{service.unit} runs as {', '.join(wrong)}, expected {service.user}"] if wrong else []
