"""Nextcloud's HTTP APIs for educloud's tools: users, groups, group folders, shares, tags, files.

A typed facade over nextcloud-api-wrapper (docs/decisions/0004-nextcloud-api-client.md).
The wrapper builds the provisioning, sharing and system-tag requests; this package sends
them (its own requests session: timeout, CA bundle, the OCS-APIRequest header on every
call) and reads every answer itself. Group folders and WebDAV files go through requests
directly, where the wrapper is wrong or missing. Failures are NextcloudError (an
EducloudError) saying what failed and what to do, never with the app password in them.

Only loopback and the lab range are targeted (educloud.netpin.check_target) unless
EDUCLOUD_ALLOW_PUBLIC_TARGETS=1; lab names (*.test) must be pinned with
educloud.netpin.pinned_names, they are never looked up in DNS.

By layer:

- `http`: the requests session, its errors, the target check (netpin);
- `ocs`: users, groups, group folders and shares (OCS);
- `webdav`: files, system tags, calendars, contacts, public links (WebDAV, CalDAV, CardDAV);
- `client`: `NextcloudClient`, the facade over both, and `client_from_env`;
- `occ`: `occ` on the Nextcloud host, over SSH or locally, and app passwords made with it.
"""

from educloud.clients.nextcloud.client import CA_ENV, NextcloudClient, client_from_env
from educloud.clients.nextcloud.http import (
    NextcloudAuthError,
    NextcloudConnectionError,
    NextcloudError,
    NextcloudNoSuchAccountError,
    NextcloudRequestError,
    NextcloudTargetError,
)
from educloud.clients.nextcloud.ocs import GroupFolder, Permission, Share, ShareType

__all__ = [
    "CA_ENV",
    "GroupFolder",
    "NextcloudAuthError",
    "NextcloudClient",
    "NextcloudConnectionError",
    "NextcloudError",
    "NextcloudNoSuchAccountError",
    "NextcloudRequestError",
    "NextcloudTargetError",
    "Permission",
    "Share",
    "ShareType",
    "client_from_env",
]
