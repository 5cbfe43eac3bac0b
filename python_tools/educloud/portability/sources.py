"""Where an export's Nextcloud content comes from (charter C8): a ContentSource per way in.

- `WebDavContent`: the user's files, calendars and address books, read as the user over
  WebDAV, with an app password from a CredentialProvider: `StaticCredentials` (given
  beforehand) or `OccAppPasswords` (made with occ on the Nextcloud host, deleted after);
- `UserMigrationContent`: Nextcloud's own export, made with occ by the user_migration app;
- `nextcloud_content`: the second where the app is enabled, else the first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import PurePosixPath

from educloud.clients.nextcloud import NextcloudClient, NextcloudRequestError
from educloud.clients.nextcloud.occ import NoNextcloudAccountError, OccAppPasswords, OccRunner
from educloud.errors import EducloudError
from educloud.portability.export import (
    CHUNK,
    ContentSource,
    CredentialProvider,
    ExportError,
    ExportItem,
)


class StaticCredentials:
    """App passwords known beforehand (tests, or passwords the operator created)."""

    def __init__(self, passwords: dict[str, str]) -> None:
        self._passwords = dict(passwords)

    def __repr__(self) -> str:
        return f"StaticCredentials({sorted(self._passwords)})"

    @contextmanager
    def app_password(self, user_id: str) -> Iterator[str]:
        try:
            yield self._passwords[user_id]
        except KeyError:
            raise ExportError(f"no app password for {user_id} in the given mapping") from None


class WebDavContent:
    """The user's files, calendars and address books, read as the user over WebDAV."""

    name = "webdav"

    def __init__(
        self,
        base_url: str,
        credentials: CredentialProvider,
        *,
        verify: bool | str = True,
        timeout: float = 60.0,
        chunk_size: int = CHUNK,
    ) -> None:
        self.base_url = base_url
        self.credentials = credentials
        self.verify = verify
        self.timeout = timeout
        self.chunk_size = chunk_size

    def items(self, user_id: str) -> Iterator[ExportItem]:
        with ExitStack() as stack:
            try:
                password = stack.enter_context(self.credentials.app_password(user_id))
            except NoNextcloudAccountError:
                return  # never logged in to Nextcloud: nothing there to export
            client = NextcloudClient(
                self.base_url, user_id, password, verify=self.verify, timeout=self.timeout
            )
            size = self.chunk_size
            for entry in client.walk():
                if not entry.is_dir:
                    yield ExportItem(
                        f"files/{entry.path}",
                        partial(client.stream_download, entry.path, size),
                        entry.last_modified,
                    )
            for listing, stream, folder, suffix in (
                (client.list_calendars, client.stream_calendar, "calendars", "ics"),
                (client.list_address_books, client.stream_address_book, "contacts", "vcf"),
            ):
                try:
                    collections = listing()
                except NextcloudRequestError as exc:
                    if exc.http_status == 404:  # no DAV home: the app holds nothing
                        continue
                    raise
                for collection in collections:
                    yield ExportItem(
                        f"{folder}/{collection.name}.{suffix}",
                        partial(stream, collection.name, size),
                    )


def nextcloud_content(
    runner: OccRunner, base_url: str, *, verify: bool | str = True, webdav_only: bool = False
) -> ContentSource:
    """Nextcloud's own user_migration export where it is enabled, else WebDAV as the user
    with a short-lived app password from occ."""
    if not webdav_only and user_migration_enabled(runner):
        return UserMigrationContent(runner)
    return WebDavContent(base_url, OccAppPasswords(runner), verify=verify)


def user_migration_enabled(runner: OccRunner) -> bool:
    """Whether the user_migration app is enabled (`occ app:list --output=json`)."""
    out = runner.occ(["app:list", "--output=json"])
    try:
        return "user_migration" in (json.loads(out).get("enabled") or {})
    except (ValueError, AttributeError):
        raise ExportError("occ app:list: unexpected output") from None


class UserMigrationContent:
    """Nextcloud's own export (user_migration app: `occ user:export <uid> <folder>`).

    The app writes `<folder>/<uid>_<date>.zip` (lib/Command/Export.php) with the files,
    versions, comments, tags, calendars, contacts and settings; the archive embeds it as
    `nextcloud/<that name>`, importable as is into another Nextcloud (`occ user:import`).
    """

    name = "user_migration"

    def __init__(self, runner: OccRunner) -> None:
        self.runner = runner

    def items(self, user_id: str) -> Iterator[ExportItem]:
        folder = self.runner.temp_dir()
        try:
            try:
                out = self.runner.occ(["user:export", user_id, folder])
            except EducloudError as exc:
                if f"Unknown user <{user_id}>" in str(exc):  # Export.php, no such account
                    return  # never logged in to Nextcloud: nothing there to export
                raise
            match = re.search(r"Export saved in (\S+\.zip)\s*$", out)
            if not match:
                raise ExportError(f"occ user:export {user_id}: no archive reported ({out[-200:]})")
            path = match.group(1)
            yield ExportItem(
                f"nextcloud/{PurePosixPath(path).name}", partial(self.runner.fetch, path)
            )
        finally:
            self.runner.remove(folder)
