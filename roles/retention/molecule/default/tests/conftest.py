"""What the host checks of the group data_rights share: the reporting, educloud_tool and
retention roles' tests, run by this scenario on its temporary host and against an
inventory (tests/run-all.sh, `educloud summary`), where only the group's hosts are in scope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from educloud.hostscope import setting as rendered_setting
from educloud.hostscope import skip_unless_in_group

# The three roles play on this inventory group (ansible/site.yml).
GROUP = "data_rights"


@pytest.fixture(autouse=True)
def _data_rights_hosts_only(host: Any) -> None:
    skip_unless_in_group(host.ansible.get_variables(), GROUP)


@pytest.fixture
def setting(host: Any) -> Callable[[str, Any], Any]:
    """A variable as the play sees it: inventory values may be templates ("{{ vault_x }}")
    that get_variables() leaves unrendered; a role default the inventory does not set is
    `default`."""

    def read(name: str, default: Any) -> Any:
        return rendered_setting(host, name, default)

    return read
