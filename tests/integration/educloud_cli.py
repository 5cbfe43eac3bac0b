"""Run the `educloud` command as an operator does, from the repository's root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from educloud.paths import repo_root


def run_educloud(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "educloud"), *args],
        capture_output=True,
        text=True,
        cwd=repo_root(),
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
