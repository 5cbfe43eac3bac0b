"""Build the bulk import provider (extensions/keycloak-bulk-import) into a jar.

It is compiled with `javac` against the jars of the very Keycloak release it will run in,
taken from that release's distribution archive (the zip the keycloak role installs): the
provider calls Keycloak internals that carry no compatibility promise between releases
(docs/decisions/0010-keycloak-bulk-import-extension.md). The jar is reproducible (fixed
entry dates), so building twice gives the same bytes and a deploy changes nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

from educloud.commands import run
from educloud.errors import EducloudError
from educloud.paths import repo_root

NAME = "educloud-keycloak-bulk-import"
# Entry dates in the jar: any fixed date makes it reproducible.
JAR_DATE = "2026-11-26T00:00:00Z"
_DIST = re.compile(r"keycloak-(?P<version>\d+\.\d+\.\d+)/lib/lib/main/(?P<jar>[^/]+\.jar)$")
# On the compile class path: Keycloak's own jars, the REST API and Jackson (JSON).
_NEEDED = re.compile(
    r"^(org\.keycloak\.keycloak-|jakarta\.ws\.rs\.jakarta\.ws\.rs-api-"
    r"|com\.fasterxml\.jackson\.core\.jackson-).*\.jar$"
)


def source_dir() -> Path:
    return repo_root() / "extensions" / "keycloak-bulk-import"


def jar_name(version: str) -> str:
    return f"{NAME}-{version}.jar"


def dist_version(dist: Path) -> str:
    """The Keycloak release a distribution archive holds (clear error when it is not one)."""
    try:
        with zipfile.ZipFile(dist) as archive:
            for name in archive.namelist():
                found = _DIST.match(name)
                if found:
                    return found["version"]
    except (OSError, zipfile.BadZipFile) as exc:
        raise EducloudError(f"{dist}: not a readable zip archive ({exc})") from None
    raise EducloudError(f"{dist}: not a Keycloak distribution (no keycloak-X.Y.Z/lib/lib/main)")


def build(dist: Path, out_dir: Path) -> Path:
    """Compile the provider against `dist`'s jars; write `out_dir/<name>-<version>.jar`.

    The jar is replaced only when its bytes change, and atomically: an interrupted build
    leaves the previous jar (or none) in place.
    """
    for tool in ("javac", "jar"):
        if shutil.which(tool) is None:
            raise EducloudError(
                f"building the Keycloak provider needs '{tool}': apt-get install -y "
                "openjdk-17-jdk-headless"
            )
    version = dist_version(dist)
    sources = sorted((source_dir() / "src" / "main" / "java").rglob("*.java"))
    resources = source_dir() / "src" / "main" / "resources"
    if not sources:
        raise EducloudError(f"{source_dir()}: no Java sources")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / jar_name(version)
    with tempfile.TemporaryDirectory(prefix="kc-provider-") as tmp:
        work = Path(tmp)
        libs, classes = work / "lib", work / "classes"
        libs.mkdir()
        with zipfile.ZipFile(dist) as archive:
            for name in archive.namelist():
                found = _DIST.match(name)
                if found and _NEEDED.match(found["jar"]):
                    (libs / found["jar"]).write_bytes(archive.read(name))
        run(
            [
                "javac",
                "--release",
                "17",
                "-Xlint:all",
                "-Werror",
                "-encoding",
                "UTF-8",
                "-cp",
                f"{libs}/*",
                "-d",
                str(classes),
                *map(str, sources),
            ],
            what=f"compiling {NAME} against Keycloak {version}",
            timeout=300,
        )
        shutil.copytree(resources, classes, dirs_exist_ok=True)
        built = work / target.name
        run(
            ["jar", "--create", f"--date={JAR_DATE}", f"--file={built}", "-C", str(classes), "."],
            what=f"packing {target.name}",
            timeout=120,
        )
        if not target.exists() or _sha256(target) != _sha256(built):
            partial = out_dir / f".{target.name}.{os.getpid()}.part"  # one per builder
            shutil.copyfile(built, partial)
            partial.replace(target)
    return target


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
