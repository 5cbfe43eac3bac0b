"""The YAML text of init's files: quoting, headers, lists, and what a file is."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

INIT = "init"  # rewritten from the answers on every run
OPERATOR = "operator"  # written once, then the operator's


@dataclass(frozen=True)
class File:
    path: str  # relative to the deployment's folder
    text: str
    owner: str = INIT
    mode: int = 0o644


def q(value: str) -> str:
    """A YAML double-quoted scalar for any text (JSON's string syntax is valid YAML)."""
    return json.dumps(value, ensure_ascii=False)


def _yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def _header(what: str) -> str:
    return (
        "---\n"
        f"# {what}\n"
        "# Written by 'educloud init' from its answers (../../../educloud-init.yml): run it again\n"
        "# to change them. Edits here are replaced: put your own settings in local.yml beside\n"
        "# this file (read after it).\n"
    )


def _list(items: Iterable[str], indent: int = 2) -> str:
    pad = " " * indent
    return "".join(f"{pad}- {q(item)}\n" for item in items)
