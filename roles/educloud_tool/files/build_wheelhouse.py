"""Build (once) the wheelhouse the educloud_tool role installs the educloud tool from.

Run on the controller by tasks/wheelhouse.yml with the controller's own Python (the
venv that runs Ansible): the wheels are the repository's package plus its dependencies at
the versions installed here (`pip freeze`, minus the editable educloud line), so the host
runs what was tested. The hosts reach no package index: they install with --no-index.

The wheelhouse lives in CACHE/<fingerprint>/ and is built only when the fingerprint changes:
the package version, the pinned dependency set, and the committed sources of the package
(git tree of python_tools/educloud and pyproject.toml; outside a git checkout, the version
alone). Prints one JSON line: {"changed", "fingerprint", "version", "path", "wheels"};
CACHE/<fingerprint>/wheelhouse.tar holds the wheels and constraints.txt.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

PACKAGE = "educloud"


def _git_sources(source: Path) -> str:
    result = subprocess.run(
        [
            "git",
            "-C",
            str(source),
            "rev-parse",
            "HEAD:python_tools/educloud",
            "HEAD:pyproject.toml",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout if result.returncode == 0 else ""


def main() -> None:
    source, cache = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    version = tomllib.loads((source / "pyproject.toml").read_text())["project"]["version"]
    freeze = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pins = sorted(
        line
        for line in freeze.splitlines()
        if line and not line.startswith("#") and not line.lower().startswith(f"{PACKAGE}==")
    )
    digest = hashlib.sha256()
    for part in (version, "\n".join(pins), _git_sources(source)):
        digest.update(part.encode() + b"\0")
    fingerprint = digest.hexdigest()[:16]
    target = cache / fingerprint
    changed = False
    if not (target / "complete").exists():
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
        try:
            (staging / "pins.txt").write_text("\n".join(pins) + "\n")
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "wheel",
                    "--quiet",
                    "--wheel-dir",
                    str(staging),
                    "--constraint",
                    str(staging / "pins.txt"),
                    str(source),
                ],
                check=True,
                stdout=sys.stderr,
            )
            (staging / "pins.txt").rename(staging / "constraints.txt")
            # One file to send: hosts get it in one transfer instead of one per wheel.
            with tarfile.open(staging / "wheelhouse.tar", "w") as archive:
                for path in [*sorted(staging.glob("*.whl")), staging / "constraints.txt"]:
                    archive.add(path, arcname=path.name)
            for wheel in staging.glob("*.whl"):
                wheel.unlink()  # kept once, in the archive
            # Written last: its presence marks a complete wheelhouse.
            (staging / "complete").write_text(fingerprint + "\n")
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        changed = True
    with tarfile.open(target / "wheelhouse.tar") as archive:
        wheels = sorted(name for name in archive.getnames() if name.endswith(".whl"))
    print(
        json.dumps(
            {
                "changed": changed,
                "fingerprint": fingerprint,
                "version": version,
                "path": str(target),
                "wheels": wheels,
            }
        )
    )


if __name__ == "__main__":
    main()
