"""What the charter refuses in Nextcloud, shared by the role's tests and the charter checks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from educloud.errors import EducloudError

# Apps shipped with Nextcloud that contact the vendor or a foreign service (C2, C5): the
# nextcloud role must deny each, and a deployment must not have one enabled. Sources: the
# admin manual's "Hardening and security guidance", "Connections to remote servers".
VENDOR_APPS = frozenset(
    {
        "survey_client",  # usage statistics to surveyserver.nextcloud.com
        "nextcloud_announcements",  # news feed from pushfeed.nextcloud.com
        "updatenotification",  # version checks with updates.nextcloud.com
        "support",  # subscription checks with cloud.nextcloud.com
        "recommendations",  # recommendations from usage (C4)
        "weather_status",  # the user's location to openstreetmap.org and met.no
        "firstrunwizard",  # links to the vendor's sites and app stores
        "lookup_server_connector",  # profiles to lookup.nextcloud.com
        "app_api",  # external apps pulled from container registries
    }
)

# Apps Nextcloud keeps enabled whatever the administrator does (occ app:disable refuses
# them), so an allow list need not name them. From Nextcloud's source, core/shipped.json,
# key "alwaysEnabled": https://github.com/nextcloud/server/blob/05f6ab998befc16b24964f9f8b1524d563726f3d/core/shipped.json
# (the newest copy the project could read; the stable34 branch was not available to it).
# The same list as the nextcloud role's nextcloud_apps_always_enabled.
ALWAYS_ENABLED_APPS = frozenset(
    {
        "files",
        "cloud_federation_api",
        "dav",
        "federatedfilesharing",
        "lookup_server_connector",
        "provisioning_api",
        "oauth2",
        "settings",
        "theming",
        "twofactor_backupcodes",
        "viewer",
        "workflowengine",
    }
)


def allowed_apps(variables: Mapping[str, Any], role_defaults: Path) -> list[str]:
    """The apps a Nextcloud host may enable: the inventory's nextcloud_apps_allowed, else
    the nextcloud role's default (what the role would apply)."""
    value = variables.get("nextcloud_apps_allowed")
    source = "the inventory"
    if value is None:
        defaults = yaml.safe_load(role_defaults.read_text(encoding="utf-8")) or {}
        value, source = defaults.get("nextcloud_apps_allowed"), str(role_defaults)
    if not isinstance(value, list) or not all(isinstance(app, str) for app in value):
        raise EducloudError(f"nextcloud_apps_allowed in {source} is not a list of app ids")
    if any("{{" in app for app in value):
        raise EducloudError(f"nextcloud_apps_allowed in {source} is templated: cannot read it")
    return list(value)


def unlisted_apps(enabled: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """Enabled apps that are neither allowed nor kept enabled by Nextcloud itself."""
    return sorted(set(enabled) - set(allowed) - ALWAYS_ENABLED_APPS)


# The expression that gives a Nextcloud host's release archive, as the nextcloud role reads
# it (roles/nextcloud/defaults/main.yml: the inventory's value, else the environment's).
ARCHIVE_EXPRESSION = (
    "nextcloud_archive_url | default(lookup('ansible.builtin.env', 'EDUCLOUD_NEXTCLOUD_ARCHIVE'))"
)
# Where the role installs Nextcloud and keeps the archives it installed from (its defaults).
INSTALL_DIR_EXPRESSION = "nextcloud_install_dir | default('/var/www/nextcloud')"
ARCHIVE_DIR_EXPRESSION = "nextcloud_archive_dir | default('/var/lib/nextcloud/archives')"
NOT_INSTALLED = "Nextcloud not installed: the inventory gives no release archive"
# occ's exit codes that are answers, not failures: config:system:get exits 1 for a key that
# is not set, printing nothing (core/Command/Config/System/GetConfig.php); setupchecks exits
# 1 when any check is not a success (core/Command/SetupChecks.php).
OCC_ANSWERING_EXITS = {"config:system:get": {0, 1}, "setupchecks": {0, 1}}


def occ_exit_problem(args: Sequence[str], exit_code: int, stdout: str) -> str | None:
    """What is wrong with `occ ARGS` having exited `exit_code`, or None when the exit code is
    one of its answers (an unset key's exit 1 must print nothing)."""
    allowed = OCC_ANSWERING_EXITS.get(args[0], {0}) if args else {0}
    if exit_code not in allowed:
        return f"occ {' '.join(args)} exited {exit_code}"
    if args[:1] == ["config:system:get"] and exit_code == 1 and stdout.strip():
        return f"occ {' '.join(args)} exited 1 with output: {stdout.strip()[-300:]}"
    return None


def installation_problem(
    *,
    archive_given: bool,
    occ_present: bool,
    config_present: bool,
    status_exit: int | None = None,
    status: Mapping[str, Any] | None = None,
) -> tuple[bool, str | None]:
    """Whether Nextcloud is installed on a host, from the inventory and the host: (installed,
    problem). Installed and no problem: check it. Not installed and no problem: the checks
    skip (NOT_INSTALLED). A problem: the checks fail, saying it.

    Only an inventory that gives no release archive, on a host with neither occ nor
    config.php, makes "not installed" a reason to skip: anything half there (occ without its
    configuration, or the other way round), an `occ status` that fails or says "not
    installed", or an archive given and nothing installed, is a broken deployment.
    `status_exit` and `status` are `occ status --output=json`'s, when both files exist."""
    if not occ_present and not config_present:
        if archive_given:
            return False, (
                "the inventory gives a Nextcloud release archive (nextcloud_archive_url) but "
                "the host has neither occ nor config/config.php"
            )
        return False, None
    if not occ_present:
        return False, "config/config.php is there but occ is not"
    if not config_present:
        return False, "occ is there but config/config.php is not (an interrupted install?)"
    if status_exit != 0 or status is None:
        return False, f"occ status failed (exit {status_exit})"
    if status.get("installed") is not True:
        return False, f"occ status says Nextcloud is not installed: {dict(status)}"
    return True, None
