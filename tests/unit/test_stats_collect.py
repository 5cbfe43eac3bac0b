"""`educloud stats` end to end in the library (C12): the small-count threshold may only be
raised, the activity window is the policy's, and the realm is read once through the
deployment's data-rights client. Keycloak and the inventory are replaced by recordings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from educloud import policy
from educloud.accounts.model import Profile
from educloud.errors import EducloudError
from educloud.stats import collect
from educloud.stats.aggregate import AccountUsage

RULES = policy.StatisticsPolicy(small_count_threshold=10, active_days=30)


def test_threshold_is_the_policys_unless_raised() -> None:
    assert collect.threshold_for(RULES, None) == 10
    assert collect.threshold_for(RULES, 10) == 10
    assert collect.threshold_for(RULES, 25) == 25


@pytest.mark.parametrize("requested", [9, 3, 0, -1])
def test_threshold_under_the_policys_is_refused(requested: int) -> None:
    with pytest.raises(EducloudError, match=f"--threshold {requested} is under the policy's 10"):
        collect.threshold_for(RULES, requested)


def test_active_since_is_the_policys_window_back_from_now() -> None:
    now = datetime(2026, 3, 31, 0, 30, tzinfo=UTC)
    assert collect.active_since(RULES, now) == date(2026, 3, 1)
    assert collect.active_since(policy.StatisticsPolicy(active_days=1), now) == date(2026, 3, 30)


class Recorded:
    """The deployment, the realm and the usage reader `statistics` calls, recorded."""

    def __init__(self, records: list[AccountUsage]) -> None:
        self.records = records
        self.loaded: list[Path] = []
        self.connected: list[dict[str, Any]] = []
        self.read_since: list[date] = []

    def load(self, inventory: Path) -> Any:
        self.loaded.append(inventory)
        return SimpleNamespace(inventory=inventory, policies_dir=None)

    @contextmanager
    def connect(self, found: Any, opener: Any, **options: Any) -> Iterator[tuple[Any, Any]]:
        self.connected.append({"found": found, **options})
        yield "directory", None

    def read_usage(self, directory: Any, *, since: date, storage_of: Any) -> list[AccountUsage]:
        assert directory == "directory" and storage_of is None
        self.read_since.append(since)
        return self.records


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Recorded:
    people = [AccountUsage("0750001U", Profile.PUPIL, active=n < 12) for n in range(30)]
    found = Recorded(people)
    monkeypatch.setattr(collect.deployment, "load", found.load)
    monkeypatch.setattr(collect.keycloak, "connect", found.connect)
    monkeypatch.setattr(collect, "read_usage", found.read_usage)
    monkeypatch.setattr(collect.policy, "load_statistics", lambda directory: RULES)
    return found


def test_statistics_reads_the_inventory_once_and_the_realm_as_data_rights(
    recorded: Recorded,
) -> None:
    now = datetime(2026, 3, 31, tzinfo=UTC)

    result = collect.statistics(Path("inv"), realm="academie", threshold=12, now=now)

    assert recorded.loaded == [Path("inv")]
    assert recorded.connected[0]["found"].inventory == Path("inv")
    assert recorded.connected[0]["realm"] == "academie"
    assert recorded.connected[0]["client"].client_id == "educloud-data-rights"
    assert recorded.read_since == [date(2026, 3, 1)]
    assert result.threshold == 12 and result.active_days == 30
    assert not result.storage_measured


def test_statistics_refuses_a_lowered_threshold_before_contacting_keycloak(
    recorded: Recorded,
) -> None:
    with pytest.raises(EducloudError, match="may only be raised"):
        collect.statistics(Path("inv"), threshold=5)
    assert recorded.connected == []


def test_statistics_with_nextcloud_needs_its_admin_password_in_the_environment(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EDUCLOUD_NEXTCLOUD_PASSWORD", raising=False)

    with pytest.raises(EducloudError, match="EDUCLOUD_NEXTCLOUD_PASSWORD"):
        collect.statistics(Path("inv"), nextcloud_url="https://127.0.0.1:8443")
    assert recorded.read_since == []
