"""educloud.clients.nextcloud against NextcloudApiDouble, a double of Nextcloud's HTTP APIs.

The double is a real HTTP server on 127.0.0.1 answering as Nextcloud documents (OCS
v1/v2 envelopes, WebDAV multistatus, basic auth); nothing here leaves this machine.
"""

from __future__ import annotations

import base64
import secrets
import socket
from collections.abc import Iterator

import pytest
from nextcloud.requester import Requester
from tests.doubles.nextcloud_api_double import NextcloudApiDouble
from tests.doubles.nextcloud_model import Reply

from educloud.clients.nextcloud import (
    NextcloudAuthError,
    NextcloudClient,
    NextcloudConnectionError,
    NextcloudError,
    NextcloudNoSuchAccountError,
    NextcloudRequestError,
    NextcloudTargetError,
    Permission,
    ShareType,
)
from educloud.netpin import PUBLIC_TARGETS_ENV, pinned_names

_ANONYMOUS = "Basic " + base64.b64encode(b"anonymous:").decode()


@pytest.fixture
def double() -> Iterator[NextcloudApiDouble]:
    with NextcloudApiDouble() as server:
        yield server


@pytest.fixture
def client(double: NextcloudApiDouble) -> NextcloudClient:
    return NextcloudClient(double.url, double.admin_user, double.admin_password, timeout=5)


def test_group_folder_is_created_and_granted_to_a_group(client: NextcloudClient) -> None:
    client.create_group("teachers")
    folder = client.create_group_folder("Maths")

    granted = client.grant_group_folder(folder.id, "teachers", Permission.READ | Permission.UPDATE)

    assert granted.mount_point == "Maths"
    assert granted.groups == {"teachers": 3}
    assert client.list_group_folders() == [granted]


def test_group_folder_quota_is_set_in_bytes(client: NextcloudClient) -> None:
    folder = client.create_group_folder("Maths")

    assert client.set_group_folder_quota(folder.id, 5 * 1024**3).quota == 5 * 1024**3


def test_file_shared_with_a_user_is_listed(client: NextcloudClient) -> None:
    client.create_user("bob", "Correct-Horse-7")
    client.upload("report.odt", b"report")

    share = client.share_with_user("report.odt", "bob", Permission.READ)

    assert (share.share_type, share.share_with, share.path, share.permissions) == (
        ShareType.USER,
        "bob",
        "/report.odt",
        Permission.READ,
    )
    assert client.list_shares() == [share]


def test_public_link_owner_is_read_without_credentials(
    client: NextcloudClient, double: NextcloudApiDouble
) -> None:
    client.upload("open.odt", b"open")
    client.upload("closed.odt", b"closed")
    open_link = client.create_public_link("open.odt")
    closed_link = client.create_public_link("closed.odt", password=secrets.token_urlsafe(12))
    seen = len(double.seen)

    assert client.public_link_owner(str(open_link.token)) == client.user
    assert client.public_link_owner(str(closed_link.token)) is None  # its password is asked
    public = double.seen[seen:]
    # The account's credentials never go to the public endpoint: at most "anonymous" and
    # no password, to learn whether the link asks for one.
    assert {r.headers.get("authorization") for r in public} == {None, _ANONYMOUS}
    # Sent as Nextcloud's web UI sends it: with outgoing federated sharing off (the
    # double's default, the role's setting) Nextcloud refuses public.php/dav without it.
    assert all(r.headers.get("x-requested-with") == "XMLHttpRequest" for r in public)
    client.delete_share(open_link.id)
    with pytest.raises(NextcloudRequestError, match="gone") as gone:
        client.public_link_owner(str(open_link.token))
    assert gone.value.http_status == 404
    with pytest.raises(NextcloudError, match="not a public link token"):
        client.public_link_owner("../admin")


def test_owner_lookup_says_so_when_a_proxy_drops_the_ajax_header(
    client: NextcloudClient, double: NextcloudApiDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.upload("open.odt", b"open")
    client.upload("closed.odt", b"closed")
    open_link = client.create_public_link("open.odt")
    closed_link = client.create_public_link("closed.odt", password=secrets.token_urlsafe(12))
    handle = double.handle

    def without_the_header(method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        kept = {k: v for k, v in headers.items() if k != "x-requested-with"}
        return handle(method, target, kept, body)

    monkeypatch.setattr(double, "handle", without_the_header)

    # publicremote.php's refusal is not read as a password: it is named.
    with pytest.raises(NextcloudRequestError, match="drops that header") as refused:
        client.public_link_owner(str(open_link.token))
    assert refused.value.http_status == 401
    # A protected link still asks its password before that check.
    assert client.public_link_owner(str(closed_link.token)) is None


def test_an_account_that_may_not_delete_is_not_told_the_account_is_gone(
    client: NextcloudClient, double: NextcloudApiDouble
) -> None:
    client.create_user("bob", "Correct-Horse-7")
    client.create_user("carol", "Correct-Horse-8")
    bob = NextcloudClient(double.url, "bob", "Correct-Horse-7", timeout=5)

    # Nextcloud answers 998 here too; the account exists, so it is a refusal.
    with pytest.raises(NextcloudRequestError, match="administrator is needed") as refused:
        bob.delete_user("carol")
    assert not isinstance(refused.value, NextcloudNoSuchAccountError)
    assert refused.value.ocs_status == 998
    with pytest.raises(NextcloudRequestError, match="own account") as itself:
        client.delete_user(double.admin_user)
    assert itself.value.ocs_status == 101
    client.delete_user("carol")
    assert "carol" not in client.list_users()


def test_tag_is_assigned_to_a_file_id(client: NextcloudClient, double: NextcloudApiDouble) -> None:
    client.upload("report.odt", b"report")
    file_id = client.file_id("report.odt")
    tag = client.create_tag("grade-5")

    client.assign_tag(file_id, tag.id)

    assert tag in client.list_tags()
    assert double.tag_assignments[file_id] == {tag.id}


def test_ocs_calls_keep_their_header_after_tag_calls(
    client: NextcloudClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The wrapper caches headers per HTTP method for OCS and WebDAV alike: from a fresh
    # cache, a tag POST leaves later POSTs without OCS-APIRequest (decision 0004).
    monkeypatch.setattr(Requester, "headers", {})
    client.create_tag("grade-5")

    client.create_user("alice", "Correct-Horse-7")

    assert client.get_user("alice").id == "alice"


def test_file_id_is_the_one_the_server_gave(
    client: NextcloudClient, double: NextcloudApiDouble
) -> None:
    client.make_folder("docs")
    client.upload("docs/a.txt", b"a")

    assert client.file_id("docs/a.txt") == double.files["admin"]["docs/a.txt"].file_id


def test_wrong_password_is_an_auth_error_without_the_password(
    double: NextcloudApiDouble,
) -> None:
    wrong = "Not-The-Password-3141"
    client = NextcloudClient(double.url, double.admin_user, wrong, timeout=5)

    with pytest.raises(NextcloudAuthError) as raised:
        client.list_users()

    assert "app password" in str(raised.value)
    assert wrong not in str(raised.value)


def test_public_target_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PUBLIC_TARGETS_ENV, raising=False)

    with pytest.raises(NextcloudTargetError, match=r"192\.0\.2\.10"):
        NextcloudClient("https://192.0.2.10", "admin", "App-Password-1")


def test_unpinned_lab_name_is_refused_without_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _refuse_dns)

    with pytest.raises(NextcloudTargetError, match="pinned_names"):
        NextcloudClient("https://cloud.educloud.test", "admin", "App-Password-1")


def test_pinned_lab_name_reaches_the_pinned_address(double: NextcloudApiDouble) -> None:
    with pinned_names({"cloud.educloud.test": "127.0.0.1"}):
        client = NextcloudClient(
            f"http://cloud.educloud.test:{double.port}",
            double.admin_user,
            double.admin_password,
            timeout=5,
        )

        assert client.list_users() == ["admin"]


def test_unreachable_server_is_a_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the client connects

    client = NextcloudClient(f"http://127.0.0.1:{port}", "admin", "App-Password-1", timeout=5)

    with pytest.raises(NextcloudConnectionError, match=f"127.0.0.1:{port}"):
        client.list_users()


def test_password_is_not_in_repr(double: NextcloudApiDouble) -> None:
    client = NextcloudClient(double.url, double.admin_user, double.admin_password)

    assert double.admin_password not in repr(client)
    assert double.admin_password not in str(client)


def _refuse_dns(host: object, port: object, *args: object, flags: int = 0, **kw: object) -> object:
    """getaddrinfo that fails a test when asked for a DNS lookup (no AI_NUMERICHOST)."""
    if not flags & socket.AI_NUMERICHOST:
        raise AssertionError(f"{host} was looked up in DNS")
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
