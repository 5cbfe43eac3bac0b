"""The charter markers of the tests under tests/charter, read from the source (no run).

Reading the decorators with `ast` lets CI compare them with policies/charter.yml before
any deployment exists (collecting the tests needs an inventory).
"""

from __future__ import annotations

import ast
from pathlib import Path


def _charter_ids(decorator: ast.expr) -> list[str] | None:
    if not isinstance(decorator, ast.Call):
        return None
    func = decorator.func
    if isinstance(func, ast.Attribute) and func.attr == "charter":
        return [
            a.value
            for a in decorator.args
            if isinstance(a, ast.Constant) and isinstance(a.value, str)
        ]
    return None


def collect(tests_dir: Path) -> dict[str, frozenset[str]]:
    """Each test function (file::function) to the guarantee ids its marker names."""
    found: dict[str, frozenset[str]] = {}
    for path in sorted(tests_dir.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                ids: list[str] = []
                for decorator in node.decorator_list:
                    ids += _charter_ids(decorator) or []
                found[f"{path.name}::{node.name}"] = frozenset(ids)
    return found
