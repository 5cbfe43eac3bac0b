"""Host settings read over SSH, evaluated against the charter (C7, C10, C13)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

FREE_COMPONENTS = frozenset({"main"})
TELEMETRY_PACKAGES = ("popularity-contest", "ubuntu-report", "whoopsie", "apport")


def sshd_problems(settings: Mapping[str, str]) -> list[str]:
    """`settings`: the effective configuration (`sshd -T`), keys lower-case."""
    expected = {
        "passwordauthentication": {"no"},
        "kbdinteractiveauthentication": {"no"},
        "permitrootlogin": {"no", "without-password", "prohibit-password"},
        "permitemptypasswords": {"no"},
        "x11forwarding": {"no"},
    }
    problems = [
        f"{key} is {settings.get(key)!r}, expected {' or '.join(sorted(values))}"
        for key, values in expected.items()
        if settings.get(key) not in values
    ]
    if int(settings.get("maxauthtries", "6")) > 4:
        problems.append(f"maxauthtries is {settings.get('maxauthtries')}, expected 4 or less")
    return problems


def parse_sshd_t(output: str) -> dict[str, str]:
    settings: dict[str, str] = {}
    for line in output.splitlines():
        key, _, value = line.partition(" ")
        settings.setdefault(key.lower(), value.strip())
    return settings


def apt_component_problems(sources: Mapping[str, str]) -> list[str]:
    """`sources`: file name to content (one-line .list and deb822 .sources)."""
    problems = []
    for name, text in sources.items():
        components: list[str] = []
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith(("deb ", "deb-src ")):
                words = re.sub(r"\[[^]]*\]", "", line).split()
                components += words[3:]
            elif line.lower().startswith("components:"):
                components += line.split(":", 1)[1].split()
        for component in sorted(set(components) - FREE_COMPONENTS):
            problems.append(f"{name} enables the {component} component")
    return problems


def non_free_packages(dpkg_lines: Iterable[str]) -> list[str]:
    """Packages whose section is in non-free, non-free-firmware or contrib."""
    found = []
    for line in dpkg_lines:
        package, _, section = line.strip().partition(" ")
        if section.split("/", 1)[0] in {"non-free", "non-free-firmware", "contrib"}:
            found.append(f"{package} ({section})")
    return found


def journald_retention_problems(config: str, days: int) -> list[str]:
    """`config`: `systemd-analyze cat-config systemd/journald.conf` (last value wins)."""
    value = None
    for line in config.splitlines():
        match = re.match(r"\s*MaxRetentionSec\s*=\s*(\S*)", line)
        if match:
            value = match.group(1)
    expected = {f"{days}day", f"{days}d", f"{days}days"}
    if value not in expected:
        return [f"journald MaxRetentionSec is {value!r}, the policy says {days}day"]
    return []


def logrotate_problems(config: str, days: int) -> list[str]:
    """Global logrotate settings must erase rotated logs within `days`."""
    maxage = None
    for line in config.splitlines():
        match = re.match(r"\s*maxage\s+(\d+)", line)
        if match and maxage is None:
            maxage = int(match.group(1))
    if maxage is None or maxage > days:
        return [f"logrotate maxage is {maxage}, the policy says at most {days} days"]
    return []
