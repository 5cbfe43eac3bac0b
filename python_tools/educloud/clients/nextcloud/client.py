"""NextcloudClient, the facade of educloud's Nextcloud client, and client_from_env.

One object per Nextcloud account: its OCS methods (users, groups, group folders, shares:
educloud.clients.nextcloud.ocs) and its WebDAV methods (files, system tags, calendars,
contacts, public links: educloud.clients.nextcloud.webdav), over one session
(educloud.clients.nextcloud.http).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import nextcloud

from educloud.clients.nextcloud.http import Http, NextcloudError, WrapperSession, check_target_host
from educloud.clients.nextcloud.ocs import OcsApi
from educloud.clients.nextcloud.webdav import WebDavApi


class NextcloudClient(OcsApi, WebDavApi):
    """One Nextcloud account (an admin for provisioning and group folders).

    `app_password` is an app password or the account's password; it is sent as HTTP
    basic auth and appears in no repr, log or error message. `verify` is True, False or
    a CA bundle path (the lab's CA); `timeout` applies to each request, in seconds.
    """

    def __init__(
        self,
        base_url: str,
        user: str,
        app_password: str,
        *,
        verify: bool | str = True,
        timeout: float = 30.0,
    ) -> None:
        parts = urlsplit(base_url)
        if "@" in parts.netloc:  # checked first: such a URL is never repeated in a message
            raise NextcloudError(
                "the Nextcloud base URL carries credentials: remove them from the URL and "
                "pass the user and app password separately"
            )
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            port = 0
        if parts.scheme not in ("http", "https") or not parts.hostname or not port:
            raise NextcloudError(
                f"{base_url!r} is not a Nextcloud base URL: give https://host[:port][/path]"
            )
        if isinstance(verify, str) and not Path(verify).is_file():
            raise NextcloudError(f"CA bundle {verify} not found: give the deployment's CA file")
        check_target_host(parts.hostname, port)
        self.base_url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.user = user
        self._http = Http(
            origin=f"{parts.scheme}://{parts.netloc}",
            base_path=parts.path.rstrip("/"),
            user=user,
            password=app_password,
            verify=verify,
            timeout=timeout,
        )
        self._wrapper = nextcloud.NextCloud(session=WrapperSession(self._http, user))

    def __repr__(self) -> str:
        return f"NextcloudClient(base_url={self.base_url!r}, user={self.user!r})"


USER_ENV = "EDUCLOUD_NEXTCLOUD_USER"
PASSWORD_ENV = "EDUCLOUD_NEXTCLOUD_PASSWORD"  # noqa: S105 (a variable name)
CA_ENV = "EDUCLOUD_NEXTCLOUD_CA"


def client_from_env(base_url: str) -> NextcloudClient:
    """A client for the admin account the environment names (never the command line)."""
    app_password = os.environ.get(PASSWORD_ENV)
    if not app_password:
        raise NextcloudError(
            f"a Nextcloud URL needs {PASSWORD_ENV} (an app password of {USER_ENV}, "
            "default admin) in the environment"
        )
    return NextcloudClient(
        base_url,
        os.environ.get(USER_ENV, "admin"),
        app_password,
        verify=os.environ.get(CA_ENV, True),
    )
