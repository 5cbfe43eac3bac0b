"""What the tests of `educloud init` share: the example's answers (inventories/example-single
is what init writes for them), the command line that gives them, and a check that every
variable an inventory's hosts take from the vault templates, as the plays would see it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from educloud.cli.main import app
from educloud.deployment import ansible
from educloud.deployment import inventory as inventory_vars
from educloud.deployment import secrets as deployment_secrets
from educloud.init import answers as answers_mod
from educloud.init import layout, places
from educloud.init import policies as init_policies
from educloud.init import questions as questions_mod
from educloud.init.places import Places
from educloud.paths import policies_dir

# A town running the cloud for its schools on one server (issue #28): TEST-NET addresses
# (RFC 5737), the one provider of the repository's hosting.yml.
EXAMPLE_FLAGS = [
    "--profile", "single",
    "--public-domain", "ecoles.ville-exemple.fr",
    "--organisation", "Ville d'Exemple",
    "--postal-address", "Hôtel de ville; 1 place de la Mairie; 00000 Exemple",
    "--host", "serveur=192.0.2.10",
    "--backup-host", "sauvegarde=192.0.2.20",
    "--provider", "educloud-lab",
    "--datacenter", "local",
    "--admin-network", "198.51.100.0/24",
    "--apt-mirror", "http://192.0.2.1:3142",
    "--artifact-mirror", "http://192.0.2.1:8088/educloud",
    "--smtp-relay", "192.0.2.25:25",
    "--operator-email", "exploitation@ville-exemple.fr",
    "--dpo-email", "dpo@ville-exemple.fr",
    "--certificates", "internal",
]  # fmt: skip

# The committed example names the repository's policies (init writes its own copy's absolute
# path) and stands for a folder given to init at /srv/educloud/ville-exemple.
EXAMPLE_PLACES = Places(
    policies="{{ inventory_dir }}/../../policies", root="/srv/educloud/ville-exemple"
)

_VAULT_NAME = re.compile(r"\bvault_[a-z0-9_]+")


def vault_names(directory: Path) -> set[str]:
    """Every vault_* an inventory's files (its vault aside) refer to."""
    found: set[str] = set()
    for path in directory.rglob("*.yml"):
        if path.name != "vault.yml":
            found |= set(_VAULT_NAME.findall(path.read_text(encoding="utf-8")))
    return found


def template_vault_values(inventory: Path) -> dict[str, int]:
    """For each host, template every variable whose value refers to the vault, as the plays
    would (an undefined vault_* fails); returns how many each host has. Values never leave
    Ansible: only their lengths come back."""
    counts = {}
    for host in inventory_vars.load(inventory):
        names = sorted(
            name
            for name, value in host.variables.items()
            if not name.startswith("vault_") and "vault_" in json.dumps(value)
        )
        if not names:
            counts[host.name] = 0
            continue
        expression = "[" + ", ".join(f"{n} | string | length" for n in names) + "] | min"
        shortest = ansible.template(inventory, host.name, expression)
        assert int(shortest) > 0, (host.name, names)
        counts[host.name] = len(names)
    return counts


def raw_answers(flags: list[str]) -> tuple[str, dict[str, str | list[str] | bool]]:
    """The profile and raw answers a command line gives (as the CLI maps its flags)."""
    by_flag = {q.flag: q for q in questions_mod.QUESTIONS}
    profile, raw = "", {}
    pairs = iter(flags)
    for flag, value in zip(pairs, pairs, strict=True):
        if flag == "--profile":
            profile = value
            continue
        question = by_flag[flag]
        if question.many:
            raw.setdefault(question.key, [])
            raw[question.key].append(value)  # type: ignore[union-attr]
        else:
            raw[question.key] = value
    return profile, raw


def example_files() -> dict[str, str]:
    """inventories/example-single as `educloud init` writes its inventory for the example's
    answers (paths relative to the inventory), without ansible.cfg (the vault's plumbing)."""
    profile, raw = raw_answers(EXAMPLE_FLAGS)
    answers = answers_mod.build(answers_mod.normalize(raw, profile), profile)
    answers = init_policies.hosting_answers(
        init_policies.copy(policies_dir(), Path("/nonexistent"), answers), answers
    )
    prefix = f"{places.INVENTORY}/"
    return {
        file.path.removeprefix(prefix): file.text
        for file in layout.inventory_files(answers, EXAMPLE_PLACES)
        if file.path != places.ANSIBLE_CFG
    }


def clear_vault_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The inventory's own ansible.cfg must be what opens its vault: nothing from ours."""
    monkeypatch.delenv(ansible.VAULT_ENV, raising=False)
    for name in deployment_secrets.PROVIDED_REGIONAL:
        monkeypatch.delenv(deployment_secrets.provided_env(name), raising=False)


def init(directory: Path, args: list[str], env: dict[str, str] | None = None) -> Result:
    """`educloud init DIRECTORY ARGS...` through the CLI."""
    return CliRunner().invoke(app, ["init", str(directory), *args], env=env)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.output, result.exception)
    return result
