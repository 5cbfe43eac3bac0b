"""The Debian mirror the host itself uses, read from its apt sources.

apt-cacher-ng must forward to that same mirror: its built-in mirror list does not
resolve on machines that reach only their configured mirror.
"""

from __future__ import annotations

import re
from pathlib import Path

from educloud.errors import EducloudError

DEFAULT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
_ONE_LINE = re.compile(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)")


def _candidate_uris(paths: tuple[Path, ...]) -> list[tuple[str, str]]:
    """(uri, suite) pairs from one-line and deb822 sources, in file order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in {".list", ".sources"}))
        elif path.is_file():
            files.append(path)
    pairs: list[tuple[str, str]] = []
    for file in files:
        text = file.read_text(encoding="utf-8", errors="replace")
        if file.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if ":" in line and not line.lstrip().startswith("#"):
                        key, _, value = line.partition(":")
                        fields[key.strip().lower()] = value.strip()
                if "deb" not in fields.get("types", "").split():
                    continue
                for uri in fields.get("uris", "").split():
                    for suite in fields.get("suites", "").split():
                        pairs.append((uri, suite))
        else:
            for line in text.splitlines():
                match = _ONE_LINE.match(line)
                if match:
                    pairs.append((match.group(1), match.group(2)))
    return pairs


def host_debian_mirror(paths: tuple[Path, ...] = DEFAULT_SOURCES) -> str:
    """The http(s) URI of the host's main Debian archive (not the security one)."""
    for uri, suite in _candidate_uris(paths):
        if suite.endswith("-security") or "security" in uri:
            continue
        if uri.startswith(("http://", "https://")) and uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/") + "/"
    raise EducloudError(
        "no Debian mirror found in the host's apt sources (/etc/apt/sources.list*): "
        "the lab's apt proxy forwards to the host's own mirror; add one and retry"
    )
