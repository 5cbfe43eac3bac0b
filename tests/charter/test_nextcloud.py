"""Nextcloud's charter settings (C2, C5-C10, C13): checked once Nextcloud is installed.

Nextcloud's release archives cannot be downloaded on the build machines, so on the lab
these checks report "not verifiable here" with the reason "Nextcloud not installed".
Values are read through occ, as Nextcloud sees them (config.php merged with the role's
charter.config.php), following the admin manual's "Using the occ command" page.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from educloud.charter import nextcloud
from educloud.deployment.model import Deployment
from educloud.paths import repo_root
from educloud.policy import Policies


@pytest.fixture
def occ(
    nextcloud_host_name: str,
    connect: Callable[[str], Any],
    nextcloud_installed: Callable[[str], bool],
    inventory_value: Callable[[str, str], Any],
) -> Callable[..., str]:
    """occ on the Nextcloud host. Skips only when the inventory gives no release archive and
    nothing is installed; a half install, or occ failing, fails the check."""
    if not nextcloud_installed(nextcloud_host_name):
        pytest.skip(nextcloud.NOT_INSTALLED)
    root = str(inventory_value(nextcloud_host_name, nextcloud.INSTALL_DIR_EXPRESSION))
    target = connect(nextcloud_host_name)
    # occ runs as the owner of config.php (Nextcloud's console refuses any other user).
    user = str(target.file(f"{root}/config/config.php").user)

    def run(*args: str) -> str:
        placeholders = " ".join(["%s"] * len(args))
        command = target.run(
            f"runuser -u %s -- php %s --no-ansi {placeholders}", user, f"{root}/occ", *args
        )
        problem = nextcloud.occ_exit_problem(list(args), command.rc, command.stdout)
        if problem:
            pytest.fail(f"{nextcloud_host_name}: {problem}: {command.stderr[-300:]}")
        return str(command.stdout.strip())

    return run


def _system(occ: Callable[..., str], key: str) -> Any:
    return json.loads(occ("config:system:get", key, "--output=json") or "null")


def _app_config(occ: Callable[..., str], app: str) -> dict[str, Any]:
    """One app's settings as stored in Nextcloud's database (occ config:list)."""
    settings: dict[str, Any] = json.loads(occ("config:list", "--output=json")).get("apps", {})
    return dict(settings.get(app, {}))


@pytest.mark.charter("C7")
def test_nextcloud_retention(
    nextcloud_host_name: str,
    occ: Callable[..., str],
    policies: Policies,
    evidence: Callable[[str], None],
) -> None:
    trash = occ("config:system:get", "trashbin_retention_obligation")
    versions = occ("config:system:get", "versions_retention_obligation")
    activity = occ("config:system:get", "activity_expire_days")
    evidence(f"{nextcloud_host_name}: trashbin {trash}, versions {versions}, activity {activity}")
    assert trash == f"auto, {policies.retention['deleted_files']['retention_days']}"
    assert versions == f"auto, {policies.retention['file_versions']['retention_days']}"
    assert activity == str(policies.retention["activity"]["retention_days"])


@pytest.mark.charter("C8")
def test_user_data_export(
    nextcloud_host_name: str,
    occ: Callable[..., str],
    evidence: Callable[[str], None],
) -> None:
    apps = json.loads(occ("app:list", "--output=json"))
    enabled = apps.get("enabled", {})
    evidence(
        f"{nextcloud_host_name}: user_migration "
        f"{'enabled' if 'user_migration' in enabled else 'absent'}"
    )
    assert "user_migration" in enabled, "users cannot export their data (user_migration app)"


@pytest.mark.charter("C13")
def test_default_formats_odf(
    nextcloud_host_name: str,
    occ: Callable[..., str],
    evidence: Callable[[str], None],
) -> None:
    # Nextcloud Office creates OOXML unless doc_format says otherwise (its default is 'ooxml').
    doc_format = _app_config(occ, "richdocuments").get("doc_format", "(unset: ooxml)")
    evidence(f"{nextcloud_host_name}: richdocuments doc_format {doc_format!r}")
    assert doc_format in {"", "odf"}, f"new documents default to {doc_format}"


@pytest.mark.charter("C5")
def test_nextcloud_closed_network(
    nextcloud_host_name: str,
    occ: Callable[..., str],
    evidence: Callable[[str], None],
) -> None:
    wanted = {
        "appstoreenabled": False,
        "updatechecker": False,
        "has_internet_connection": False,
        "connectivity_check_domains": [],
        "lookup_server": "",
        "reference_opengraph": False,
    }
    found = {key: _system(occ, key) for key in wanted}
    evidence(f"{nextcloud_host_name}: {json.dumps(found)}")
    assert found == wanted


@pytest.mark.charter("C5")
def test_nextcloud_lookup_server_off(
    nextcloud_host_name: str,
    occ: Callable[..., str],
    evidence: Callable[[str], None],
) -> None:
    sharing = _app_config(occ, "files_sharing")
    upload = sharing.get("lookupServerUploadEnabled", "(unset: yes)")
    lookups = sharing.get("lookupServerEnabled", "(unset)")
    evidence(
        f"{nextcloud_host_name}: lookupServerUploadEnabled {upload}, lookupServerEnabled {lookups}"
    )
    assert upload == "no", "profiles would be uploaded to the lookup server"
    assert lookups == "no"


@pytest.mark.charter("C2")
def test_vendor_apps_disabled(
    nextcloud_host_name: str,
    deployment: Deployment,
    occ: Callable[..., str],
    evidence: Callable[[str], None],
) -> None:
    """Every enabled app is allowed by the inventory or kept enabled by Nextcloud itself:
    an allow list, so an app nobody thought to deny fails too."""
    enabled = set(json.loads(occ("app:list", "--output=json")).get("enabled", {}))
    allowed = nextcloud.allowed_apps(
        deployment.host(nextcloud_host_name).variables,
        repo_root() / "roles" / "nextcloud" / "defaults" / "main.yml",
    )
    unlisted = nextcloud.unlisted_apps(enabled, allowed)
    # lookup_server_connector cannot be disabled: test_nextcloud_lookup_server_off covers it.
    vendor = sorted((enabled & nextcloud.VENDOR_APPS) - nextcloud.ALWAYS_ENABLED_APPS)
    evidence(
        f"{nextcloud_host_name} : applications activées {sorted(enabled)} ; "
        f"hors de la liste autorisée : {unlisted or 'aucune'}"
    )
    assert not vendor, f"vendor apps enabled: {vendor}"
    assert not unlisted, f"apps enabled outside nextcloud_apps_allowed: {unlisted}"


@pytest.mark.charter("C6")
def test_nextcloud_links_to_the_privacy_notice(
    nextcloud_host_name: str,
    deployment: Deployment,
    occ: Callable[..., str],
    evidence: Callable[[str], None],
) -> None:
    theming = _app_config(occ, "theming")
    hostname = str(deployment.host(nextcloud_host_name).variables.get("nextcloud_hostname", ""))
    privacy = theming.get("privacyUrl", "(unset)")
    evidence(f"{nextcloud_host_name}: privacyUrl {privacy}")
    assert privacy.startswith(f"https://{hostname}/"), "the privacy link leaves the platform"


@pytest.mark.charter("C10")
def test_nextcloud_setup_checks(
    nextcloud_host_name: str,
    occ: Callable[..., str],
    evidence: Callable[[str], None],
) -> None:
    # occ setupchecks exits 1 on warnings too: the severities decide (Nextcloud >= 28).
    results = json.loads(occ("setupchecks", "--output=json"))
    errors = [
        f"{category}/{name}: {result.get('description', '')}"
        for category, checks in results.items()
        for name, result in checks.items()
        if result.get("severity") == "error"
    ]
    evidence(f"{nextcloud_host_name}: setup check errors {errors or 'none'}")
    assert not errors
