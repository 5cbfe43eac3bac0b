"""Which transport an export's files, calendars and contacts come through (C8).

With a file of app passwords (a JSON object user id -> app password): WebDAV as each user,
with those, and no SSH to the server. Otherwise occ on the inventory's Nextcloud host, over
SSH: Nextcloud's own user_migration export where it is enabled (unless WebDAV is asked
for), else WebDAV as the user with a short-lived app password made by occ.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from educloud.clients.nextcloud import CA_ENV
from educloud.clients.nextcloud.occ import SshOcc
from educloud.deployment import model as deployment
from educloud.errors import EducloudError
from educloud.portability.export import ContentSource
from educloud.portability.sources import StaticCredentials, WebDavContent, nextcloud_content


def read_app_passwords(path: Path) -> StaticCredentials:
    """The app passwords of a JSON file {"user id": "app password", ...}."""
    try:
        passwords = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EducloudError(f"{path}: not a JSON object user -> app password ({exc})") from None
    if not isinstance(passwords, dict) or not all(
        isinstance(value, str) and value for value in passwords.values()
    ):
        raise EducloudError(
            f"{path}: not a JSON object user -> app password (each value a non-empty string)"
        )
    return StaticCredentials({str(k): v for k, v in passwords.items()})


def content_source(
    inventory: Path,
    *,
    nextcloud_url: str | None = None,
    app_passwords: Path | None = None,
    webdav_only: bool = False,
) -> ContentSource:
    """The transport for `inventory`'s Nextcloud (at `nextcloud_url`, default the
    inventory's own). Certificates are checked against EDUCLOUD_NEXTCLOUD_CA, else (over
    SSH) the CA the deployment exports, else the system's trust store."""
    verify: bool | str = os.environ.get(CA_ENV) or True
    if app_passwords is not None:
        if not nextcloud_url:
            raise EducloudError("--app-passwords needs --nextcloud-url")
        return WebDavContent(nextcloud_url, read_app_passwords(app_passwords), verify=verify)
    runner, default_url = SshOcc.from_inventory(inventory)
    if verify is True:
        ca_file = deployment.load(inventory).ca_file
        verify = str(ca_file) if ca_file else True
    return nextcloud_content(
        runner, nextcloud_url or default_url, verify=verify, webdav_only=webdav_only
    )
