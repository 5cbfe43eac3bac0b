"""Run the `educloud` command as an operator does, from the repository's root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from educloud.paths import repo_root


def run_educloud(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    unset: tuple[str, ...] = (),
) -> subprocess.CompletedProcess:
    """`educloud ARGS`; `env` adds to this process's environment, `unset` removes from it."""
    environment = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in unset}
    return subprocess.run(
        [str(Path(sys.executable).parent / "educloud"), *args],
        capture_output=True,
        text=True,
        cwd=repo_root(),
        env=environment,
        timeout=timeout,
        check=False,
    )
