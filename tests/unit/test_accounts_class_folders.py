"""Class folders in Nextcloud, through educloud.clients.nextcloud, against the Nextcloud API
double (tests/doubles): Nextcloud's server cannot be installed here."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date

import pytest
from tests.doubles.nextcloud_api_double import NextcloudApiDouble

from educloud.accounts.class_folders import ARCHIVED, CURRENT, mount_point, sync_class_folders
from educloud.accounts.model import GroupKind, GroupState, class_group, school_group
from educloud.clients.nextcloud import NextcloudClient

UAI = "0750001U"
CLASS_3A = GroupState(class_group(UAI, 2026, "3A"), GroupKind.CLASS, UAI, "3A", 2026)
CLASS_3B = GroupState(class_group(UAI, 2026, "3B"), GroupKind.CLASS, UAI, "3B", 2026)
SCHOOL = GroupState(school_group(UAI), GroupKind.SCHOOL, UAI, "")


@pytest.fixture
def double() -> Iterator[NextcloudApiDouble]:
    with NextcloudApiDouble() as server:
        yield server


@pytest.fixture
def client(double: NextcloudApiDouble) -> NextcloudClient:
    return NextcloudClient(double.url, double.admin_user, double.admin_password, timeout=5)


def _folders(client: NextcloudClient) -> dict[str, dict[str, int]]:
    return {f.mount_point: dict(f.groups) for f in client.list_group_folders()}


def test_each_class_gets_its_group_and_a_folder_granted_to_it(client):
    done = sync_class_folders(client, [SCHOOL, CLASS_3A, CLASS_3B])

    assert {c.action for c in done} == {"create group", "create folder"}
    assert {CLASS_3A.name, CLASS_3B.name} <= set(client.list_groups())
    assert school_group(UAI) not in client.list_groups()  # schools get no folder
    assert _folders(client) == {
        "Classe 3A 2026-2027 (0750001U)": {CLASS_3A.name: int(CURRENT)},
        "Classe 3B 2026-2027 (0750001U)": {CLASS_3B.name: int(CURRENT)},
    }


def test_second_sync_changes_nothing(client):
    sync_class_folders(client, [CLASS_3A, CLASS_3B])

    assert sync_class_folders(client, [CLASS_3A, CLASS_3B]) == []
    assert len(client.list_group_folders()) == 2


def test_archived_class_keeps_its_folder_read_only(client):
    sync_class_folders(client, [CLASS_3A])
    archived = replace(CLASS_3A, archived_on=date(2027, 9, 1))

    (change,) = sync_class_folders(client, [archived])

    assert change.action == "set permissions"
    assert _folders(client) == {mount_point(CLASS_3A): {CLASS_3A.name: int(ARCHIVED)}}


def test_folder_left_ungranted_by_an_interrupted_run_is_reused(client):
    client.create_group_folder(mount_point(CLASS_3A))  # the run stopped right after this

    sync_class_folders(client, [CLASS_3A])

    assert _folders(client) == {mount_point(CLASS_3A): {CLASS_3A.name: int(CURRENT)}}
