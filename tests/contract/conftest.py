"""The targets of the Nextcloud contract tests: the double, always; a real Nextcloud when given.

`nextcloud` is parametrised over "double" (tests.doubles.nextcloud_api_double on 127.0.0.1,
started as the unit tests start it) and "real" (the Nextcloud 34 that EDUCLOUD_NEXTCLOUD_URL
names, with an admin's app password; skipped, saying why, without the URL). The same test
functions run against both (docs/nextcloud.md, "Contract tests against a real Nextcloud").

Against a real Nextcloud the tests run on an academy's instance: every object they create
is named with a prefix of its own (`educloud-contract-<random>`) and `scratch` removes it
at the end of the test, failed or not. The app password is kept out of every repr, message
and report.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from tests.contract.nextcloud_targets import PREFIX, Scratch, Target, real_target
from tests.doubles.nextcloud_api_double import NextcloudApiDouble

from educloud.clients.nextcloud import NextcloudClient


@pytest.fixture(params=["double", "real"])
def nextcloud(request: pytest.FixtureRequest) -> Iterator[Target]:
    if request.param == "double":
        with NextcloudApiDouble() as double:
            yield Target("double", double.url, double.admin_user, double.admin_password, True, 5)
        return
    yield real_target()


@pytest.fixture
def client(nextcloud: Target) -> NextcloudClient:
    """The administrator's client of the target."""
    return nextcloud.client()


@pytest.fixture
def scratch(client: NextcloudClient) -> Iterator[Scratch]:
    """Names for what a test creates, and the removal of all of it at the end."""
    created = Scratch(client, PREFIX + secrets.token_hex(4))
    try:
        yield created
    finally:
        created.remove_all()
