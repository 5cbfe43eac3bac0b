"""The lab sits on top of the library (issue #23): only the lab itself and the CLI wiring
import educloud.lab, and no code tells the lab apart by an inventory's name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "python_tools" / "educloud"


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _is_lab(path: Path) -> bool:
    return path.relative_to(PACKAGE).parts[0] == "lab"


def _is_cli(path: Path) -> bool:
    return path.relative_to(PACKAGE).parts[0] == "cli"


def lab_imports(source: str) -> list[int]:
    """Line numbers of the imports of educloud.lab (or of anything under it) in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        if any(name == "educloud.lab" or name.startswith("educloud.lab.") for name in names):
            found.append(node.lineno)
    return found


def lab_name_tests(source: str) -> list[int]:
    """Line numbers where a value is compared with "lab" (==, !=, in, startswith...)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        operands: list[ast.expr] = []
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"startswith", "endswith", "__eq__", "match", "fullmatch"}
        ):
            operands = list(node.args)
        if any(isinstance(o, ast.Constant) and o.value == "lab" for o in operands):
            found.append(node.lineno)
    return found


def test_the_checks_catch_what_they_look_for() -> None:
    assert lab_imports("from educloud.lab import orchestrate\n") == [1]
    assert lab_imports("import educloud.lab.settings\n") == [1]
    assert lab_imports("def f():\n    from educloud import lab\n") == [2]
    assert lab_imports("from educloud.labels import x\nimport educloud.deploy\n") == []
    assert lab_name_tests('if inventory.resolve().name == "lab":\n    pass\n') == [1]
    assert lab_name_tests('x = "lab" in inventory.parts\n') == [1]
    assert lab_name_tests('x = name.endswith("lab")\n') == [1]
    assert lab_name_tests('name = "lab" if single else "lab-x"\n') == []


@pytest.mark.parametrize(
    "module",
    [m for m in _modules() if not _is_lab(m) and not _is_cli(m)],
    ids=lambda m: str(m.relative_to(PACKAGE)),
)
def test_library_module_does_not_import_the_lab(module: Path) -> None:
    lines = lab_imports(module.read_text(encoding="utf-8"))
    assert not lines, f"{module.relative_to(PACKAGE)} imports educloud.lab at line(s) {lines}"


@pytest.mark.parametrize(
    "module",
    [m for m in _modules() if not _is_lab(m)],
    ids=lambda m: str(m.relative_to(PACKAGE)),
)
def test_no_code_recognises_the_lab_by_name(module: Path) -> None:
    lines = lab_name_tests(module.read_text(encoding="utf-8"))
    assert not lines, f"{module.relative_to(PACKAGE)} compares a value with 'lab' at {lines}"
