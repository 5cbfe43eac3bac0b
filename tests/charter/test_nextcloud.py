"""Nextcloud's charter settings (C7, C8, C9, C13): checked once Nextcloud is installed.

Nextcloud's release archives cannot be downloaded on the build machines, so on the lab
these checks report "not verifiable here" with the reason "Nextcloud not installed".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from educloud.charter.deployment import Deployment
from educloud.policy import Policies


def _occ(
    deployment: Deployment, host_name: str, connect: Callable[[str], Any]
) -> Callable[..., str]:
    variables = deployment.host(host_name).variables
    root = str(variables.get("nextcloud_install_dir", "/var/www/nextcloud"))
    target = connect(host_name)
    if not target.file(f"{root}/occ").exists or not target.file(f"{root}/config/config.php").exists:
        pytest.skip("Nextcloud not installed")
    user = str(variables.get("nextcloud_user", "www-data"))

    def occ(*args: str) -> str:
        placeholders = " ".join(["%s"] * len(args))
        command = target.run(f"runuser -u %s -- php %s {placeholders}", user, f"{root}/occ", *args)
        return str(command.stdout.strip())

    return occ


@pytest.mark.charter("C7")
def test_nextcloud_retention(
    nextcloud_host_name: str,
    deployment: Deployment,
    connect: Callable[[str], Any],
    policies: Policies,
    evidence: Callable[[str], None],
) -> None:
    occ = _occ(deployment, nextcloud_host_name, connect)
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
    deployment: Deployment,
    connect: Callable[[str], Any],
    evidence: Callable[[str], None],
) -> None:
    occ = _occ(deployment, nextcloud_host_name, connect)
    apps = json.loads(occ("app:list", "--output=json"))
    enabled = apps.get("enabled", {})
    evidence(
        f"{nextcloud_host_name}: user_migration "
        f"{'enabled' if 'user_migration' in enabled else 'absent'}"
    )
    assert "user_migration" in enabled, "users cannot export their data (user_migration app)"


@pytest.mark.charter("C9")
def test_illicit_content_reporting(
    nextcloud_host_name: str,
    deployment: Deployment,
    connect: Callable[[str], Any],
    evidence: Callable[[str], None],
) -> None:
    _occ(deployment, nextcloud_host_name, connect)
    evidence(f"{nextcloud_host_name} : aucun canal de signalement intégré à Nextcloud")
    pytest.fail("no in-app reporting of illicit content is deployed yet (issue #7)")


@pytest.mark.charter("C13")
def test_default_formats_odf(
    nextcloud_host_name: str,
    deployment: Deployment,
    connect: Callable[[str], Any],
    evidence: Callable[[str], None],
) -> None:
    occ = _occ(deployment, nextcloud_host_name, connect)
    doc_format = occ("config:app:get", "richdocuments", "doc_format")
    evidence(f"{nextcloud_host_name}: richdocuments doc_format {doc_format or '(default: ODF)'}")
    assert doc_format in {"", "odf"}, f"new documents default to {doc_format}"
