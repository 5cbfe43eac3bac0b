"""`educloud summary`'s host checks: one pytest run for the roles, its cases split by role."""

from __future__ import annotations

from pathlib import Path

from educloud import hostchecks
from educloud.junit import Case


def test_every_role_with_checks_is_found_and_their_files_do_not_collide() -> None:
    """One pytest run holds every role's checks only while no two share a file name."""
    dirs = hostchecks.role_test_dirs()
    assert {"common", "keycloak", "reverse_proxy"} <= set(dirs)
    names = [f.name for d in dirs.values() for f in d.glob("test_*.py")]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_one_run_on_two_workers_for_the_selected_roles(tmp_path: Path) -> None:
    dirs = [Path("/r/roles/a/molecule/default/tests"), Path("/r/roles/b/molecule/default/tests")]
    argv = hostchecks.host_checks_argv(tmp_path / "hosts.yml", dirs, tmp_path / "r.xml")
    assert [a for a in argv if a in {str(d) for d in dirs}] == [str(d) for d in dirs]
    assert argv[-2:] == ["-n", "2"]
    assert f"--ansible-inventory={tmp_path / 'hosts.yml'}" in argv
    one = hostchecks.host_checks_argv(tmp_path / "hosts.yml", dirs, tmp_path / "r.xml", 1)
    assert "-n" not in one


def test_cases_are_split_by_the_role_in_their_classname() -> None:
    case = Case("roles.reverse_proxy.molecule.default.tests.test_reverse_proxy", "t", "passed")
    assert hostchecks.role_of(case) == "reverse_proxy"
    # A collection error has no role: it is reported apart, not dropped.
    assert hostchecks.role_of(Case("", "t", "failed")) == ""
