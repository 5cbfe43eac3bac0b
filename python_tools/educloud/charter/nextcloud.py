"""What the charter refuses in Nextcloud, shared by the role's tests and the charter checks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
