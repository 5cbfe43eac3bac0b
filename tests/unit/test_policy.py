"""policies/: the repository's files are valid, and broken copies are refused clearly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from educloud import policy
from educloud.charter import markers
from educloud.paths import policies_dir, repo_root


def test_repository_policies_are_valid() -> None:
    loaded = policy.load()
    assert [g.id for g in loaded.guarantees] == [f"C{i}" for i in range(1, 14)]


def test_charter_and_test_markers_agree() -> None:
    found = markers.collect(repo_root() / "tests" / "charter")
    assert found, "no charter test found"
    assert policy.charter_test_problems(policy.load(), found) == []


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(policies_dir(), target)
    return target


def _edit(path: Path, change: object) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)  # type: ignore[operator]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def _problems(directory: Path) -> list[str]:
    with pytest.raises(policy.PolicyError) as caught:
        policy.load(directory)
    return [str(p) for p in caught.value.problems]


def test_technical_guarantee_without_check_is_refused(copy: Path) -> None:
    _edit(copy / "charter.yml", lambda d: d["guarantees"][4].update(checks=[], declarations=[]))
    assert _problems(copy) == [
        "policies/charter.yml: guarantees[4].checks: C5 is technical but no check proves it "
        "(add a test, or mark it organisational, contractual or declared)"
    ]


def test_declaration_must_be_one_of_the_checks(copy: Path) -> None:
    _edit(
        copy / "charter.yml",
        lambda d: d["guarantees"][4].update(declarations=["test_x.py::test_only_read"]),
    )
    assert _problems(copy) == [
        "policies/charter.yml: guarantees[4].declarations: test_x.py::test_only_read is a "
        "declaration of C5 but not one of its checks"
    ]


def _add_control(role: str, variables: list[str]) -> object:
    def change(data: dict[str, list[dict[str, list[dict[str, object]]]]]) -> None:
        c8 = next(g for g in data["guarantees"] if g["id"] == "C8")
        c8["controls"].append({"role": role, "variables": variables})

    return change


def test_control_naming_a_variable_its_role_lacks_is_refused(copy: Path) -> None:
    """Also for the educloud_tool role, whose prefix a deployment-wide educloud_* setting
    shares (those, such as educloud_hosting, are no role's)."""
    _edit(copy / "charter.yml", _add_control("educloud_tool", ["educloud_tool_venvs"]))
    _edit(
        copy / "charter.yml", _add_control("retention", ["retention_exports", "educloud_hosting"])
    )
    assert _problems(copy) == [
        f"policies/charter.yml: guarantees[7].controls[{n}].variables: {variable} is not "
        f"defined in roles/{role}/defaults/main.yml"
        for n, role, variable in (
            (3, "educloud_tool", "educloud_tool_venvs"),
            (4, "retention", "retention_exports"),
        )
    ]


def test_contractual_guarantee_without_check_is_accepted(copy: Path) -> None:
    assert policy.load(copy).guarantee("C11").checks == ()


def test_check_naming_unknown_guarantee_is_refused() -> None:
    found = dict(markers.collect(repo_root() / "tests" / "charter"))
    found["test_x.py::test_y"] = frozenset({"C99"})
    problems = [str(p) for p in policy.charter_test_problems(policy.load(), found)]
    assert (
        "tests/charter/test_x.py::test_y: (top): marker names C99, not in the charter" in problems
    )


def test_listed_check_that_does_not_exist_is_refused() -> None:
    found = dict(markers.collect(repo_root() / "tests" / "charter"))
    del found["test_egress.py::test_unlisted_destination_refused"]
    problems = [str(p) for p in policy.charter_test_problems(policy.load(), found)]
    assert any(
        "no test named test_egress.py::test_unlisted_destination_refused" in p for p in problems
    )


def test_schema_error_names_file_path_and_problem(copy: Path) -> None:
    _edit(copy / "retention.yml", lambda d: d["categories"]["web_logs"].update(retention_days="30"))
    assert _problems(copy) == [
        "policies/retention.yml: categories.web_logs.retention_days: '30' is not of type 'integer'"
    ]


def test_egress_outside_allowed_countries_is_refused(copy: Path) -> None:
    _edit(copy / "egress.yml", lambda d: d["destinations"][0].update(country="US"))
    assert _problems(copy) == [
        "policies/egress.yml: destinations[0].country: US is not in hosting.yml "
        "countries_allowed ['FR']"
    ]


def test_egress_name_instead_of_address_is_refused(copy: Path) -> None:
    _edit(copy / "egress.yml", lambda d: d["destinations"][0].update(address="deb.debian.org"))
    assert any("is not an IP address or network" in p for p in _problems(copy))


def test_backup_kept_past_its_retention_is_refused(copy: Path) -> None:
    # Five weekly snapshots reach 35 days: the 30-day period would not hold (C7).
    _edit(copy / "retention.yml", lambda d: d["categories"]["backups"]["keep"].update(weekly=5))
    assert _problems(copy) == [
        "policies/retention.yml: categories.backups.keep.weekly: keeps weekly snapshots for "
        "35 days, past retention_days (30)"
    ]


def test_backup_keep_horizons_in_days() -> None:
    assert policy.backup_keep_days({"daily": 7, "weekly": 4, "monthly": 1}) == {
        "daily": 7,
        "weekly": 28,
        "monthly": 30,
    }


def test_missing_file_is_refused(copy: Path) -> None:
    (copy / "hosting.yml").unlink()
    assert _problems(copy) == ["policies/hosting.yml: (top): file is missing"]


@pytest.mark.parametrize(
    ("declaration", "expected"),
    [
        ({"provider": "educloud-lab", "country": "FR", "datacenter": "local"}, []),
        (
            None,
            [
                "educloud_hosting is not set: declare provider, country and datacenter "
                "(see policies/hosting.yml)"
            ],
        ),
        ({"provider": "educloud-lab", "country": "FR"}, ["educloud_hosting lacks datacenter"]),
        (
            {"provider": "educloud-lab", "country": "US", "datacenter": "local"},
            [
                "country US is not allowed (allowed: FR)",
                "provider educloud-lab is approved in FR, not US",
            ],
        ),
        (
            {"provider": "hyperscaler", "country": "FR", "datacenter": "paris-1"},
            ["provider hyperscaler is not approved (approved: educloud-lab)"],
        ),
    ],
)
def test_hosting_declaration(declaration: object, expected: list[str]) -> None:
    assert policy.hosting_problems(policy.load(), declaration) == expected


def test_offline_sessions_idle_past_their_retention_is_refused(copy: Path) -> None:
    # An idle limit longer than the maximum lifespan would never apply (C7).
    _edit(
        copy / "retention.yml",
        lambda d: d["categories"]["offline_sessions"].update(idle_days=31),
    )
    assert _problems(copy) == [
        "policies/retention.yml: categories.offline_sessions.idle_days: 31 days is past "
        "retention_days (30)"
    ]
