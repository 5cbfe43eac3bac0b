"""Read rendered Nextcloud configuration the way PHP reads it (Debian's PHP CLI)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

PHP = shutil.which("php8.2") or shutil.which("php")


def php_config(path: Path) -> dict[str, Any]:
    """The $CONFIG array a Nextcloud config file defines, as PHP evaluates it."""
    if PHP is None:
        pytest.fail("the PHP CLI is missing: install php8.2-cli (./run.sh setup does)")
    php = subprocess.run(
        [PHP, "-r", "include $argv[1]; echo json_encode($CONFIG);", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    config: dict[str, Any] = json.loads(php.stdout)
    return config
