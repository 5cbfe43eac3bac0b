"""Contract tests of educloud.clients.nextcloud: what must hold against any Nextcloud 34.

Each test runs twice (tests/contract/conftest.py): against the double of Nextcloud's APIs
(tests/doubles, on 127.0.0.1) and against the real Nextcloud EDUCLOUD_NEXTCLOUD_URL names
(skipped without one). What the client's unit tests check of the double alone (requests it
saw, its stored state, its failure modes) stays in tests/unit/test_nextcloud_api.py.

Everything a test creates is named `educloud-contract-<random>-...` and removed by the
`scratch` fixture at its end, failed or not: against a real Nextcloud these tests run on
an academy's instance, as its administrator.
"""

from __future__ import annotations

import pytest
import requests
from tests.contract.nextcloud_targets import Scratch, Target

from educloud.clients.nextcloud import (
    NextcloudClient,
    NextcloudNoSuchAccountError,
    NextcloudRequestError,
    ShareType,
)

# -- users: OCS provisioning API ---------------------------------------------------------


def test_created_user_is_listed_with_its_details(client: NextcloudClient, scratch: Scratch) -> None:
    email = f"{scratch.prefix}@example.invalid"  # a domain that never receives mail

    user_id = scratch.user(display_name="Alice Martin", email=email)

    assert user_id in client.list_users(search=user_id)
    user = client.get_user(user_id)
    assert (user.id, user.display_name, user.email, user.enabled) == (
        user_id,
        "Alice Martin",
        email,
        True,
    )


def test_an_existing_user_id_is_refused_with_102(client: NextcloudClient, scratch: Scratch) -> None:
    user_id = scratch.user()
    other_password = scratch.strong_password()

    with pytest.raises(NextcloudRequestError) as raised:
        client.create_user(user_id, other_password)

    assert raised.value.ocs_status == 102
    assert f"create user {user_id}" in str(raised.value)
    assert "already exists" in str(raised.value)
    assert other_password not in str(raised.value)


def test_an_invalid_user_id_is_refused_with_101(client: NextcloudClient, scratch: Scratch) -> None:
    # Nextcloud's user manager allows letters, digits and " _.@-'" only; "/" never.
    invalid = f"{scratch.prefix}/student"
    scratch.remove_user_later(invalid)  # should Nextcloud create it after all

    with pytest.raises(NextcloudRequestError, match="user id is not valid") as raised:
        client.create_user(invalid, scratch.strong_password())

    assert raised.value.ocs_status == 101


def test_a_weak_password_is_refused_by_the_password_policy_with_107(
    client: NextcloudClient, scratch: Scratch
) -> None:
    # UsersController::addUser answers 107 with the HintException's hint: password_policy
    # (enabled by the nextcloud role) refuses fewer than 10 characters and common passwords.
    weak = "1234567"  # the weak password under test

    with pytest.raises(NextcloudRequestError, match="password policy refused") as raised:
        client.create_user(scratch.user_id(), weak)

    assert raised.value.ocs_status == 107
    assert weak not in str(raised.value)


def test_disabled_user_reads_as_disabled_until_enabled(
    client: NextcloudClient, scratch: Scratch
) -> None:
    user_id = scratch.user()

    client.disable_user(user_id)
    assert client.get_user(user_id).enabled is False

    client.enable_user(user_id)
    assert client.get_user(user_id).enabled is True


def test_deleted_user_is_gone(client: NextcloudClient, scratch: Scratch) -> None:
    user_id = scratch.user()

    client.delete_user(user_id)

    assert user_id not in client.list_users(search=user_id)
    assert client.storage_used(user_id) is None


def test_deleting_an_account_nextcloud_does_not_have_is_its_own_error(
    client: NextcloudClient, scratch: Scratch
) -> None:
    # UsersController::deleteUser answers OCS 998 with HTTP 200 on v1 (the wrapper's
    # provisioning API); nextcloud/server#28894.
    missing = scratch.name("never-logged-in")

    with pytest.raises(NextcloudNoSuchAccountError, match=f"no account {missing}") as gone:
        client.delete_user(missing)

    assert (gone.value.user_id, gone.value.ocs_status, gone.value.http_status) == (
        missing,
        998,
        200,
    )


@pytest.mark.parametrize(("version", "http_status"), [(1, 200), (2, 404)])
def test_deleting_an_account_that_does_not_exist_answers_998(
    nextcloud: Target, scratch: Scratch, version: int, http_status: int
) -> None:
    # What the client tells apart above, as Nextcloud answers it (raw OCS, no client).
    with requests.Session() as session:
        session.trust_env = False  # as the client: no proxy or netrc from the environment
        response = session.delete(
            f"{nextcloud.url.rstrip('/')}/ocs/v{version}.php/cloud/users/{scratch.name('nobody')}",
            params={"format": "json"},
            headers={"OCS-APIRequest": "true"},
            auth=(nextcloud.user, nextcloud.password),
            verify=nextcloud.verify,
            timeout=nextcloud.timeout,
            allow_redirects=False,
        )
    meta = response.json()["ocs"]["meta"]

    assert (response.status_code, meta["status"], meta["statuscode"], meta["message"]) == (
        http_status,
        "failure",
        998,
        "",
    )


# -- groups ------------------------------------------------------------------------------


def test_group_members_follow_additions_and_removals(
    client: NextcloudClient, scratch: Scratch
) -> None:
    alice, bob = scratch.user(), scratch.user()
    group = scratch.group()

    client.add_member(group, alice)
    client.add_member(group, bob)
    client.remove_member(group, alice)

    assert group in client.list_groups(search=group)
    assert client.get_group(group).members == (bob,)
    assert group in client.get_user(bob).groups
    assert group not in client.get_user(alice).groups


# -- files: WebDAV, in the administrator's files ----------------------------------------


def test_webdav_round_trip_keeps_bytes_and_awkward_names(
    client: NextcloudClient, scratch: Scratch
) -> None:
    content = bytes(range(256))
    folder = f"{scratch.folder()}/Cours 2025"
    client.make_folder(folder)

    client.upload(f"{folder}/notes #1?.bin", content)

    assert client.download(f"{folder}/notes #1?.bin") == content
    (entry,) = client.list_folder(folder)
    assert (entry.name, entry.is_dir, entry.size) == ("notes #1?.bin", False, 256)

    client.delete(f"{folder}/notes #1?.bin")
    assert client.list_folder(folder) == []


def test_missing_file_is_a_clear_webdav_error(client: NextcloudClient, scratch: Scratch) -> None:
    missing = f"{scratch.folder()}/nothing.txt"

    with pytest.raises(NextcloudRequestError, match=r"nothing\.txt does not exist") as raised:
        client.download(missing)

    assert raised.value.http_status == 404


# -- shares: public links ---------------------------------------------------------------


def test_public_link_is_created_listed_and_deleted(
    client: NextcloudClient, scratch: Scratch
) -> None:
    path = f"{scratch.folder()}/report.odt"
    client.upload(path, b"report")

    # With a password: an instance may enforce one on links (shareapi_enforce_links_password).
    link = scratch.public_link(path, password=scratch.strong_password())

    assert link.share_type == ShareType.PUBLIC_LINK
    assert link.token and link.url and link.url.endswith(link.token)
    assert link.share_with is None
    assert [share.id for share in client.list_shares(path)] == [link.id]
    assert client.public_link_active(link.token)

    client.delete_share(link.id)

    assert client.list_shares(path) == []
    assert not client.public_link_active(link.token)
