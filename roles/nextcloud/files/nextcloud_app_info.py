"""Read appinfo/info.xml from Nextcloud app release archives and say whether each fits.

Run on the controller by tasks/app_compatibility.yml, with the Python that runs Ansible,
before anything changes on the hosts:

    nextcloud_app_info.py --nextcloud 34.0.4 --php 8.2 ARCHIVE [ARCHIVE ...]

Prints one JSON list, one object per archive, in the order given: the app's id and version,
its <dependencies><nextcloud min-version max-version> and <php min-version max-version>, and
whether the given Nextcloud and PHP versions fall within them ("nextcloud_fits",
"php_fits"), or "error" when the archive holds no readable app. Exit 0 unless the arguments
are wrong; the role decides what to refuse.

The comparison is Nextcloud's own (lib/private/App/DependencyAnalyzer.php,
normalizeVersions and analyzeOC): both versions are cut to the shorter one's number of
components before comparing, so max-version="34" admits 34.0.4. Nextcloud's app-info schema
(resources/app-info.xsd) requires both min-version and max-version of <nextcloud>.

The role unpacks an archive with tar --strip-components=1 into apps-extra/<app id>, so the
file read is <one top directory>/appinfo/info.xml (the layout of the nextcloud-releases
archives: <app id>/appinfo/info.xml). Nothing is extracted to disk.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tarfile
from pathlib import Path
from typing import Any

from defusedxml import ElementTree

# Larger than any real info.xml (user_oidc's is about 4 KiB).
MAX_INFO_BYTES = 1024 * 1024


def _numbers(version: str) -> list[int]:
    """Components of a dotted version; each component's leading digits (34.0.0RC1 -> 34.0.0)."""
    numbers = []
    for part in version.strip().split("."):
        match = re.match(r"\d+", part)
        numbers.append(int(match.group()) if match else 0)
    return numbers


def compare(first: str, second: str) -> int:
    """-1, 0 or 1, as Nextcloud compares: cut to the shorter version, then component-wise."""
    a, b = _numbers(first), _numbers(second)
    length = min(len(a), len(b))
    a, b = a[:length], b[:length]
    return (a > b) - (a < b)


def within(version: str, minimum: str | None, maximum: str | None) -> bool:
    """Whether VERSION is neither below MINIMUM nor above MAXIMUM (None: no bound)."""
    if minimum is not None and compare(version, minimum) < 0:
        return False
    return not (maximum is not None and compare(version, maximum) > 0)


def _info_member(archive: tarfile.TarFile) -> tarfile.TarInfo:
    found = []
    for member in archive.getmembers():
        parts = [part for part in member.name.split("/") if part]
        if member.isfile() and len(parts) == 3 and parts[1:] == ["appinfo", "info.xml"]:
            found.append(member)
    if not found:
        raise ValueError("no <app>/appinfo/info.xml in it: not a Nextcloud app release archive")
    if len(found) > 1:
        names = ", ".join(sorted(member.name for member in found))
        raise ValueError(f"several apps in one archive ({names})")
    if found[0].size > MAX_INFO_BYTES:
        raise ValueError(f"{found[0].name} is larger than {MAX_INFO_BYTES} bytes")
    return found[0]


def read_info(path: Path) -> bytes:
    """The bytes of <top>/appinfo/info.xml in the tar archive PATH (any compression)."""
    try:
        with tarfile.open(path, mode="r:*") as archive:
            member = _info_member(archive)
            content = archive.extractfile(member)
            if content is None:
                raise ValueError(f"{member.name} cannot be read")
            return content.read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ValueError(f"not a readable tar archive ({error})") from error


def _text(root: Any, tag: str) -> str | None:
    element = root.find(tag)
    if element is None or element.text is None:
        return None
    return str(element.text).strip() or None


def describe(path: Path, nextcloud: str, php: str) -> dict[str, Any]:
    """What the app archive PATH declares, and whether NEXTCLOUD and PHP fit it."""
    result: dict[str, Any] = {"archive": str(path), "error": None}
    try:
        root = ElementTree.fromstring(read_info(path))
    except ElementTree.ParseError as error:
        result["error"] = f"appinfo/info.xml is not valid XML ({error})"
        return result
    except ValueError as error:
        result["error"] = str(error)
        return result
    dependencies = root.find("dependencies")
    server = dependencies.find("nextcloud") if dependencies is not None else None
    platform = dependencies.find("php") if dependencies is not None else None
    result.update(
        id=_text(root, "id"),
        version=_text(root, "version"),
        nextcloud_min=server.get("min-version") if server is not None else None,
        nextcloud_max=server.get("max-version") if server is not None else None,
        php_min=platform.get("min-version") if platform is not None else None,
        php_max=platform.get("max-version") if platform is not None else None,
    )
    if result["nextcloud_min"] is None or result["nextcloud_max"] is None:
        result["error"] = (
            "appinfo/info.xml declares no <dependencies><nextcloud min-version max-version>"
            " (both are required by Nextcloud's app-info schema)"
        )
        return result
    result["nextcloud_fits"] = within(nextcloud, result["nextcloud_min"], result["nextcloud_max"])
    result["php_fits"] = within(php, result["php_min"], result["php_max"])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Read appinfo/info.xml of Nextcloud app archives.")
    parser.add_argument("--nextcloud", required=True, help="version of the Nextcloud installed")
    parser.add_argument("--php", required=True, help="version of the PHP running it")
    parser.add_argument("archives", nargs="+", type=Path)
    options = parser.parse_args(argv)
    results = [describe(path, options.nextcloud, options.php) for path in options.archives]
    json.dump(results, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
