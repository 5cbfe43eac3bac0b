"""What the charter refuses in Nextcloud, shared by the role's tests and the charter checks."""

from __future__ import annotations

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
