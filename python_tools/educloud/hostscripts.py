"""The self-contained scripts the roles install on servers (roles/<role>/files/<name>.py,
the standard library and Debian's Python packages only, so that a server needs no educloud
package), as modules for the controller: their tests, benchmarks and the charter checks
that send a script's source to a host import them from the checkout."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from educloud.paths import repo_root


def path(role: str, name: str) -> Path:
    """The script `name` of `role`, as this checkout has it."""
    return repo_root() / "roles" / role / "files" / f"{name}.py"


def load(role: str, name: str) -> ModuleType:
    """The script as a module, loaded once per process under its own name."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path(role, name))
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path(role, name)}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
