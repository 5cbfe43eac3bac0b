"""Release archives for the lab hosts, fetched on the host and served on the lab bridge.

Lab hosts reach no registry: the host fetches each archive listed in
lab/artifacts.yml (Maven coordinates through `mvn dependency:copy`) into
the artifact directory, which the lab's HTTP server publishes read-only.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from educloud.commands import run
from educloud.errors import EducloudError
from educloud.lab.settings import LabPaths
from educloud.paths import repo_root


@dataclass(frozen=True)
class Artifact:
    file: str
    maven: str


def manifest_file() -> Path:
    return repo_root() / "lab" / "artifacts.yml"


def load_manifest(path: Path | None = None) -> list[Artifact]:
    source = path or manifest_file()
    if not source.exists():
        return []
    data = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    items = data.get("artifacts", [])
    artifacts: list[Artifact] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not item.get("file") or not item.get("maven"):
            raise EducloudError(f"{source}: artifacts[{index}] needs 'file' and 'maven'")
        if "/" in str(item["file"]):
            raise EducloudError(f"{source}: artifacts[{index}].file must be a plain file name")
        artifacts.append(Artifact(str(item["file"]), str(item["maven"])))
    return artifacts


def fetch_all(paths: LabPaths, artifacts: list[Artifact]) -> list[str]:
    """Fetch what is missing (idempotent); returns the files fetched now."""
    paths.artifacts.mkdir(parents=True, exist_ok=True)
    fetched: list[str] = []
    for artifact in artifacts:
        target = paths.artifacts / artifact.file
        if target.is_file():
            continue
        if shutil.which("mvn") is None:
            raise EducloudError(
                f"{artifact.file} is needed and 'mvn' is missing: apt-get install -y maven"
            )
        with tempfile.TemporaryDirectory(dir=paths.root) as tmp:
            run(
                [
                    "mvn",
                    "-q",
                    "-B",
                    "dependency:copy",
                    f"-Dartifact={artifact.maven}",
                    f"-DoutputDirectory={tmp}",
                    "-Dmdep.useBaseVersion=true",
                ],
                what=f"fetching {artifact.maven} from Maven Central",
                timeout=1200,
            )
            candidates = list(Path(tmp).iterdir())
            if len(candidates) != 1:
                raise EducloudError(f"mvn fetched {len(candidates)} files for {artifact.maven}")
            # Rename into place only when complete: an interrupted fetch leaves nothing.
            candidates[0].rename(target)
        fetched.append(artifact.file)
    return fetched
