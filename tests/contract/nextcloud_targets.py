"""The targets of the Nextcloud contract tests and what the tests create on them.

`Target` is one Nextcloud (the double, or the real one `real_target` reads from the
environment); `Scratch` names and removes everything a test creates there. The fixtures
over them are in tests/contract/conftest.py; docs/nextcloud.md, "Contract tests against
a real Nextcloud", says how to run them against a real Nextcloud.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from educloud.clients.nextcloud import (
    NextcloudClient,
    NextcloudNoSuchAccountError,
    NextcloudRequestError,
    NextcloudTargetError,
    Share,
)
from educloud.netpin import PUBLIC_TARGETS_ENV

URL_ENV = "EDUCLOUD_NEXTCLOUD_URL"
USER_ENV = "EDUCLOUD_NEXTCLOUD_USER"
# The same names as every command that talks to Nextcloud (clients/nextcloud/client.py).
APP_PASSWORD_ENV = "EDUCLOUD_NEXTCLOUD_PASSWORD"  # noqa: S105 (a variable name)
CA_ENV = "EDUCLOUD_NEXTCLOUD_CA"
NO_REAL_NEXTCLOUD = (
    f"no real Nextcloud given: set {URL_ENV}, {USER_ENV} and {APP_PASSWORD_ENV} (docs/nextcloud.md)"
)
PREFIX = "educloud-contract-"
"""What every user, group, folder and link the tests create is named with."""


@dataclass(frozen=True)
class Target:
    """One Nextcloud the contract tests run against: its base URL and admin credentials."""

    name: str
    url: str
    user: str
    password: str = field(repr=False)
    verify: bool | str = True
    timeout: float = 30.0

    def client(self) -> NextcloudClient:
        return NextcloudClient(
            self.url, self.user, self.password, verify=self.verify, timeout=self.timeout
        )


def real_target() -> Target:
    """The real Nextcloud of the environment; skipped without one, failed when half given."""
    url = os.environ.get(URL_ENV, "").strip()
    if not url:
        pytest.skip(NO_REAL_NEXTCLOUD)
    missing = [name for name in (USER_ENV, APP_PASSWORD_ENV) if not os.environ.get(name)]
    if missing:
        pytest.fail(
            f"{URL_ENV} is set without {' and '.join(missing)}: give the user name of a "
            "Nextcloud administrator and an app password of that account "
            "(docs/nextcloud.md, 'Contract tests against a real Nextcloud')",
            pytrace=False,
        )
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or "@" in parts.netloc
        or parts.query
        or parts.fragment
    ):
        # Not repeated: a malformed value may hold credentials.
        pytest.fail(
            f"{URL_ENV} is not a Nextcloud base URL: give https://host[:port][/path], "
            "without credentials, query or fragment",
            pytrace=False,
        )
    if parts.scheme == "http" and not _loopback(parts.hostname):
        pytest.fail(
            f"{URL_ENV} is plain http to {parts.hostname}: the app password would cross the "
            "network in clear; give the https address",
            pytrace=False,
        )
    verify: bool | str = True
    ca = os.environ.get(CA_ENV, "").strip()
    if ca:
        if not Path(ca).is_file():
            pytest.fail(f"{CA_ENV}={ca}: no such file (the deployment's CA bundle)", pytrace=False)
        verify = ca
    target = Target("real", url, os.environ[USER_ENV], os.environ[APP_PASSWORD_ENV], verify)
    refused = None
    try:
        target.client()  # the URL and the target check (netpin), before any test sends
    except NextcloudTargetError as exc:
        refused = str(exc)
    if refused:
        pytest.fail(
            f"{refused}: set {PUBLIC_TARGETS_ENV}=1 to let the contract tests reach the "
            f"Nextcloud {URL_ENV} names (and nothing else)",
            pytrace=False,
        )
    return target


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Scratch:
    """What one test creates on the target, under one prefix; `remove_all` undoes it.

    Everything is registered for removal before the request that creates it is sent, so
    that an object a failing request left behind is removed too. Removing something that
    is gone already (the test removed it) is not an error.
    """

    def __init__(self, client: NextcloudClient, prefix: str) -> None:
        self.prefix = prefix
        self._client = client
        self._numbers = itertools.count(1)
        self._undo: list[tuple[str, Callable[[], None]]] = []
        self._folder: str | None = None

    def name(self, kind: str) -> str:
        """A fresh name under the prefix, e.g. educloud-contract-1a2b3c4d-user1."""
        return f"{self.prefix}-{kind}{next(self._numbers)}"

    @staticmethod
    def strong_password() -> str:
        """A password any password policy accepts: long, random, every character class."""
        return f"Ct-{secrets.token_urlsafe(24)}-9a!"

    def user_id(self) -> str:
        """A fresh user id, removed at the end whether or not the test creates it."""
        user_id = self.name("user")
        self.remove_user_later(user_id)
        return user_id

    def remove_user_later(self, user_id: str) -> None:
        self._undo.append((f"user {user_id}", lambda: self._remove_user(user_id)))

    def user(self, *, display_name: str | None = None, email: str | None = None) -> str:
        """A new user with a strong password: its id."""
        user_id = self.user_id()
        self._client.create_user(
            user_id, self.strong_password(), display_name=display_name, email=email
        )
        return user_id

    def group(self) -> str:
        group_id = self.name("group")
        self._undo.append((f"group {group_id}", lambda: self._remove_group(group_id)))
        self._client.create_group(group_id)
        return group_id

    def folder(self) -> str:
        """The test's folder in the administrator's files (one per test)."""
        if self._folder is None:
            self._folder = self.prefix
            folder = self._folder
            self._undo.append((f"folder /{folder}", lambda: self._remove_file(folder)))
            self._client.make_folder(folder)
        return self._folder

    def public_link(self, path: str, *, password: str | None = None) -> Share:
        """A public link of `path`, removed at the end (after the file is, if need be)."""
        link = self._client.create_public_link(path, password=password)
        self._undo.append((f"share {link.id}", lambda: self._remove_share(link.id)))
        return link

    def remove_all(self) -> None:
        """Undo everything, last first; what could not be removed fails the test."""
        left: list[str] = []
        while self._undo:
            what, remove = self._undo.pop()
            try:
                remove()
            except Exception as exc:  # every object gets its attempt
                left.append(f"{what} ({type(exc).__name__}: {exc})")
        if left:
            pytest.fail(
                f"left on {self._client.base_url}, remove by hand: " + "; ".join(left),
                pytrace=False,
            )

    def _remove_user(self, user_id: str) -> None:
        # Looked up first: an id Nextcloud refused (say with a "/") is never sent in a path.
        if user_id not in self._client.list_users(search=user_id):
            return
        with contextlib.suppress(NextcloudNoSuchAccountError):
            self._client.delete_user(user_id)

    def _remove_group(self, group_id: str) -> None:
        if group_id in self._client.list_groups(search=group_id):
            self._client.delete_group(group_id)

    def _remove_file(self, path: str) -> None:
        try:
            self._client.delete(path)
        except NextcloudRequestError as exc:
            if exc.http_status != 404:
                raise

    def _remove_share(self, share_id: str) -> None:
        try:
            self._client.delete_share(share_id)
        except NextcloudRequestError as exc:
            if 404 not in (exc.http_status, exc.ocs_status):
                raise
