"""The names the internal CA may vouch for (C10, issue #29 finding 9), as the reverse_proxy role
works them out: every site name of every inventory host whose certificates this CA signs.

The CA's tasks run once for every proxy host of the play, so the names cannot be the first
host's alone (a regional deployment's proxies may serve different sites), nor only the hosts
of this run (a run limited to one proxy would sign the CA again without the others' names).
The role's own two tasks (tasks/certificates_internal_ca.yml) run here with the real
ansible-playbook, on local stand-in hosts; nothing is signed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.role_validation import run_playbook

from educloud.paths import repo_root

TASKS = repo_root() / "roles/reverse_proxy/tasks/certificates_internal_ca.yml"
NAMES_TASKS = (
    "Work out the names the CA may vouch for",
    "Refuse a site outside the names the CA may vouch for",
)


def _site(name: str) -> dict[str, str]:
    return {"name": name, "upstream": "http://127.0.0.1:8080"}


def _inventory(ca_dir: str, p2: dict[str, Any] | None = None) -> dict[str, Any]:
    """Two proxies of this play (p1, p2) sharing a CA, a third proxy of the same CA that the
    run leaves out (p3: only inventory values, the role's defaults apply), a proxy on ACME, a
    proxy of another CA and a host that is no proxy."""
    proxy = {"reverse_proxy_ca_controller_dir": ca_dir, "reverse_proxy_ca_permitted_domains": []}
    return {
        "all": {
            "vars": {"ansible_connection": "local"},
            "children": {
                "proxies": {
                    "hosts": {
                        "p1": {
                            **proxy,
                            "reverse_proxy_certificate_source": "internal_ca",
                            "reverse_proxy_sites": [
                                _site("auth.educloud.test"),
                                _site("cloud.educloud.test"),
                            ],
                        },
                        "p2": {
                            **proxy,
                            "reverse_proxy_certificate_source": "internal_ca",
                            "reverse_proxy_sites": [_site("auth-admin.educloud.test")],
                            **(p2 or {}),
                        },
                    }
                },
                "elsewhere": {
                    "hosts": {
                        "p3": {
                            "reverse_proxy_ca_controller_dir": ca_dir,
                            "reverse_proxy_sites": [_site("files.educloud.test")],
                        },
                        "acme1": {
                            "reverse_proxy_ca_controller_dir": ca_dir,
                            "reverse_proxy_certificate_source": "acme",
                            "reverse_proxy_sites": [_site("www.public.example")],
                        },
                        "other1": {
                            "reverse_proxy_ca_controller_dir": f"{ca_dir}-other",
                            "reverse_proxy_sites": [_site("intranet.other.example")],
                        },
                        "db1": {},
                    }
                },
            },
        }
    }


def _run(
    tmp_path: Path, p2: dict[str, Any] | None = None, limit: str = "proxies"
) -> tuple[dict[str, list[str]], str]:
    """Each host's names after the role's tasks, and what ansible-playbook said."""
    tasks = [t for t in yaml.safe_load(TASKS.read_text()) if t["name"] in NAMES_TASKS]
    assert [t["name"] for t in tasks] == list(NAMES_TASKS)
    record = {
        "name": "Record the names",
        "ansible.builtin.copy": {
            "content": "{{ reverse_proxy_ca_names | to_json }}",
            "dest": f"{tmp_path}/{{{{ inventory_hostname }}}}.json",
            "mode": "0644",
        },
    }
    play = [{"name": "Names", "hosts": limit, "gather_facts": False, "tasks": [*tasks, record]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(_inventory(str(tmp_path / "ca"), p2)))
    done = run_playbook(tmp_path / "play.yml", str(tmp_path / "hosts.yml"), {})
    names = {p.stem: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    return names, done.stdout + done.stderr


SHARED = [
    "auth-admin.educloud.test",
    "auth.educloud.test",
    "cloud.educloud.test",
    "files.educloud.test",
]


def test_every_host_of_the_ca_gets_every_site_name(tmp_path: Path) -> None:
    names, said = _run(tmp_path)
    assert names == {"p1": SHARED, "p2": SHARED}, said


def test_a_run_limited_to_one_proxy_keeps_the_others_names(tmp_path: Path) -> None:
    names, said = _run(tmp_path, limit="p2")
    assert names == {"p2": SHARED}, said


def test_a_parent_domain_set_on_purpose_is_taken_as_is(tmp_path: Path) -> None:
    """reverse_proxy_ca_permitted_domains replaces the host's own names (the charter check,
    not the role, fails a parent domain)."""
    names, said = _run(tmp_path, {"reverse_proxy_ca_permitted_domains": ["educloud.test"]})
    expected = ["auth.educloud.test", "cloud.educloud.test", "educloud.test", "files.educloud.test"]
    assert names == {"p1": expected, "p2": expected}, said


@pytest.mark.parametrize("domains", [["other.example"], ["test"]], ids=["outside", "one-label"])
def test_a_site_outside_the_names_is_refused(tmp_path: Path, domains: list[str]) -> None:
    names, said = _run(tmp_path, {"reverse_proxy_ca_permitted_domains": domains})
    assert "p2" not in names, said
    assert "every site must fall within them" in said, said
