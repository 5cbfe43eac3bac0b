"""The charter checks: run against any deployment through its Ansible inventory.

    pytest tests/charter --educloud-inventory inventories/lab      (or: educloud verify)

Hosts, sites and realms come from the inventory, so each check is parametrized by what
the deployment has; a check with nothing to look at is reported "not verifiable here"
(pytest's skip), never as passed. Every test carries `pytest.mark.charter(...)`; the
guarantee ids and the evidence travel in the JUnit report (record_property).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import testinfra
from keycloak import KeycloakAdmin

from educloud import policy
from educloud.charter import nextcloud
from educloud.deployment import model as deployment_mod
from educloud.deployment.model import Deployment
from educloud.netpin import pinned_names
from educloud.paths import repo_root

DEFAULT_INVENTORY = "inventories/lab"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--educloud-inventory",
        default=os.environ.get("EDUCLOUD_INVENTORY", DEFAULT_INVENTORY),
        help="the deployment's Ansible inventory (directory or file)",
    )
    parser.addoption(
        "--educloud-limit",
        default="",
        help="only these hosts or groups (comma-separated), like ansible --limit",
    )
    parser.addoption(
        "--educloud-guarantees",
        default="",
        help="only the checks of these guarantees (comma-separated ids, e.g. C5,C10)",
    )


def _inventory_path(config: pytest.Config) -> Path:
    path = Path(config.getoption("--educloud-inventory"))
    return path if path.is_absolute() else repo_root() / path


@functools.cache
def _deployment(path: Path) -> Deployment:
    return deployment_mod.load(path)


@functools.cache
def _policies(path: Path) -> policy.Policies:
    return policy.load(_deployment(path).policies_dir)


def _check_id(item: pytest.Item) -> str:
    return f"{Path(str(item.fspath)).name}::{getattr(item, 'originalname', item.name)}"


# Parameters that name the host a check runs against.
HOST_PARAMETERS = (
    "host_name",
    "proxy_host_name",
    "keycloak_host_name",
    "nextcloud_host_name",
    "backup_host_name",
    "backup_target_host_name",
)


def _host_of(item: pytest.Item, dep: Deployment) -> str:
    """The inventory host a check case looks at (for the report's header), or "" when it
    looks at the whole deployment."""
    params: dict[str, Any] = getattr(getattr(item, "callspec", None), "params", {})
    for name in HOST_PARAMETERS:
        if params.get(name) is not None:  # None: the "sans-objet" case of an empty group
            return str(params[name])
    by_address = {h.address: h.name for h in dep.hosts}
    site = params.get("site") or params.get("public_site")
    if site is None and "public_page" in params:
        site = urlsplit(str(params["public_page"])).hostname
    if site is not None:
        address = dep.pins().get(str(site), "")
        return by_address.get(address, address)
    if ("realm" in params or "idp_realm" in params) and dep.in_group("keycloak"):
        return dep.in_group("keycloak")[0].name
    return ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    dep = _deployment(_inventory_path(config))
    wanted = {g for g in str(config.getoption("--educloud-guarantees")).split(",") if g}
    kept, deselected = [], []
    for item in items:
        ids = sorted({g for mark in item.iter_markers("charter") for g in mark.args})
        if wanted and not wanted & set(ids):
            deselected.append(item)
            continue
        kept.append(item)
        item.user_properties.append(("check", _check_id(item)))
        item.user_properties.append(("charter", ",".join(ids)))
        item.user_properties.append(("host", _host_of(item, dep)))
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def _parametrize(metafunc: pytest.Metafunc, fixture: str, values: list[str], absent: str) -> None:
    """Parametrize `fixture` by `values`; none gives one case skipped with `absent` (French,
    for the report): without it pytest would say "got empty parameter set" in the report."""
    if values:
        metafunc.parametrize(fixture, values)
    else:
        skipped = pytest.param(None, marks=pytest.mark.skip(reason=absent), id="sans-objet")
        metafunc.parametrize(fixture, [skipped])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    dep = _deployment(_inventory_path(metafunc.config))
    groups = {
        "host_name": None,
        "proxy_host_name": "reverse_proxy",
        "keycloak_host_name": "keycloak",
        "nextcloud_host_name": "nextcloud",
        "backup_host_name": "backup",
        "backup_target_host_name": "backup_target",
    }
    limit = {p for p in str(metafunc.config.getoption("--educloud-limit")).split(",") if p}
    for fixture, group in groups.items():
        if fixture in metafunc.fixturenames:
            hosts = dep.hosts if group is None else dep.in_group(group)
            if limit:
                hosts = tuple(h for h in hosts if h.name in limit or limit & set(h.groups))
            where = f"du groupe « {group} » " if group else ""
            absent = f"ne s'applique pas : aucun hôte {where}dans l'inventaire" + (
                " parmi ceux retenus par --limit" if limit else ""
            )
            _parametrize(metafunc, fixture, [h.name for h in hosts], absent)
    for fixture, values, absent in (
        ("site", [s.name for s in dep.sites], "aucun site web dans l'inventaire"),
        ("public_site", [s.name for s in dep.public_sites], "aucun site public dans l'inventaire"),
        ("realm", list(dep.realms), "aucun royaume Keycloak dans l'inventaire"),
        # The inventory's realms and master, which no inventory declares (the master case
        # also covers the realms the server has and the inventory does not declare).
        (
            "idp_realm",
            [*dep.realms, "master"] if dep.keycloak_url else [],
            "pas de Keycloak dans l'inventaire",
        ),
        ("public_page", public_pages(dep), "aucune page publique dans l'inventaire"),
    ):
        if fixture in metafunc.fixturenames:
            _parametrize(metafunc, fixture, values, f"ne s'applique pas : {absent}")


def public_pages(dep: Deployment) -> list[str]:
    """Every page a user loads without an account, plus the account pages' entry."""
    pages = []
    keycloak = urlsplit(dep.keycloak_url).hostname if dep.keycloak_url else None
    for site in dep.public_sites:
        # Keycloak's root only redirects to its admin console, which the public site refuses:
        # its users' first pages are the account pages below.
        if site.name != keycloak:
            pages.append(f"https://{site.name}/")
        pages.append(f"https://{site.name}{dep.privacy_path}")
    if dep.keycloak_url:
        pages += [f"{dep.keycloak_url.rstrip('/')}/realms/{realm}/account/" for realm in dep.realms]
    return pages


@pytest.fixture(scope="session")
def deployment(pytestconfig: pytest.Config) -> Deployment:
    return _deployment(_inventory_path(pytestconfig))


@pytest.fixture(scope="session")
def policies(pytestconfig: pytest.Config) -> policy.Policies:
    return _policies(_inventory_path(pytestconfig))


@pytest.fixture(scope="session", autouse=True)
def _reach_sites(deployment: Deployment) -> Iterator[None]:
    """Resolve the deployment's names to its reverse proxies (before DNS knows them)."""
    with pinned_names(deployment.pins()):
        yield


@pytest.fixture(scope="session")
def connect(pytestconfig: pytest.Config) -> Callable[[str], Any]:
    """A testinfra host (ansible backend) for an inventory host name."""
    inventory = str(_inventory_path(pytestconfig))
    cache: dict[str, Any] = {}

    def get(name: str) -> Any:
        if name not in cache:
            cache[name] = testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def inventory_value(connect: Callable[[str], Any]) -> Callable[[str, str], Any]:
    """An expression over a host's inventory variables, templated by Ansible itself (so a
    value written as "{{ educloud_admin_networks }}" reads as the list it stands for).
    Role defaults are not visible here: give one with `| default(...)`. Never use it for
    a secret that could end in a failure message."""
    cache: dict[tuple[str, str], Any] = {}

    def get(host_name: str, expression: str) -> Any:
        if (host_name, expression) not in cache:
            answer = connect(host_name).ansible(
                "ansible.builtin.debug", f"msg={{{{ {expression} }}}}", check=False
            )
            cache[host_name, expression] = answer["msg"]
        return cache[host_name, expression]

    return get


@pytest.fixture(scope="session")
def nextcloud_installed(
    deployment: Deployment,
    connect: Callable[[str], Any],
    inventory_value: Callable[[str, str], Any],
) -> Callable[[str], bool]:
    """Whether Nextcloud is installed on a host of the nextcloud group: True (check it),
    False (skip: the inventory gives no archive and nothing is there), or the calling check
    fails, saying what is half there (educloud.charter.nextcloud.installation_problem)."""
    cache: dict[str, tuple[bool, str | None]] = {}

    def installed(host_name: str) -> bool:
        if host_name not in cache:
            # Templated as the plays template them (a value may be "{{ web_root }}/...").
            root = str(inventory_value(host_name, nextcloud.INSTALL_DIR_EXPRESSION))
            kept = str(inventory_value(host_name, nextcloud.ARCHIVE_DIR_EXPRESSION))
            target = connect(host_name)
            occ_present = target.file(f"{root}/occ").exists
            config_present = target.file(f"{root}/config/config.php").exists
            status_exit, status = None, None
            if occ_present and config_present:
                user = str(target.file(f"{root}/config/config.php").user)
                answer = target.run(
                    "runuser -u %s -- php %s --no-ansi status --output=json", user, f"{root}/occ"
                )
                status_exit = answer.rc
                with contextlib.suppress(ValueError):
                    status = json.loads(answer.stdout)
            archive = inventory_value(host_name, nextcloud.ARCHIVE_EXPRESSION)
            # The deploy may have had the archive from its own environment: the release the
            # role keeps on the host says so too, whatever this machine's environment.
            kept_release = target.run("ls %s/nextcloud-* 2>/dev/null", kept).stdout.strip()
            cache[host_name] = nextcloud.installation_problem(
                archive_given=bool(str(archive or "").strip() or kept_release),
                occ_present=occ_present,
                config_present=config_present,
                status_exit=status_exit,
                status=status if isinstance(status, dict) else None,
            )
        result, problem = cache[host_name]
        if problem:
            pytest.fail(f"{host_name}: {problem}")
        return result

    return installed


@pytest.fixture(scope="session")
def ca_bundle(deployment: Deployment) -> str | bool:
    """The CA the deployment's certificates chain to: its exported CA, else the system's."""
    for host in deployment.in_group("reverse_proxy"):
        exported = host.variables.get("reverse_proxy_ca_export_path")
        if isinstance(exported, str) and exported and Path(exported).is_file():
            return exported
    return "/etc/ssl/certs/ca-certificates.crt"


@pytest.fixture(scope="session")
def kc_admin(
    deployment: Deployment, connect: Callable[[str], Any], ca_bundle: str
) -> KeycloakAdmin:
    hosts = deployment.in_group("keycloak")
    if not hosts or not deployment.keycloak_admin_url:
        pytest.skip("no Keycloak host in the inventory")
    # Ansible resolves the (vaulted) variable in memory; it is never printed.
    answer = connect(hosts[0].name).ansible(
        "ansible.builtin.debug", "msg={{ keycloak_automation_client_secret }}", check=False
    )
    admin = KeycloakAdmin(
        server_url=deployment.keycloak_admin_url,
        # Master's automation client (keycloak role, tasks/master.yml): client credentials.
        client_id=str(
            hosts[0].variables.get("keycloak_automation_client_id", "educloud-automation")
        ),
        client_secret_key=answer["msg"],
        realm_name="master",
        user_realm_name="master",
        verify=ca_bundle,
    )
    return admin


@pytest.fixture
def evidence(record_property: Callable[[str, object], None]) -> Callable[[str], None]:
    """Record what the check saw; the compliance report shows it under the guarantee."""
    lines: list[str] = []

    def add(text: str) -> None:
        lines.append(text)
        record_property("evidence", "\n".join(lines))

    return add
