"""Host settings read over SSH, evaluated against the charter (C7, C10, C13)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

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
        # ANSSI BP-028 R63: nothing tunnels through an administration login.
        "allowtcpforwarding": {"no"},
        "allowagentforwarding": {"no"},
        "permittunnel": {"no"},
        "gatewayports": {"no"},
        "permituserenvironment": {"no"},
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


# systemd time span units (systemd.time(7)), in seconds.
_SPAN_UNITS = {
    "us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3,
    "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
    "M": 2629800, "month": 2629800, "months": 2629800,
    "y": 31557600, "year": 31557600, "years": 31557600,
}  # fmt: skip


def systemd_span_seconds(value: str) -> float | None:
    """A systemd time span ("30day", "4w 2d", "1month", bare seconds) in seconds; None
    when it does not parse."""
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)", value.strip())
    if not parts or re.sub(r"[\d.\sA-Za-z]", "", value):
        return None
    for number, unit in parts:
        factor = _SPAN_UNITS.get(unit if unit == "M" else unit.lower()) if unit else 1
        if factor is None:
            return None
        total += float(number) * factor
    return total


def _journal_setting(config: str, key: str) -> str | None:
    """The value systemd applies: the last assignment in `cat-config` order."""
    value = None
    for line in config.splitlines():
        match = re.match(rf"\s*{key}\s*=\s*(.*?)\s*$", line)
        if match:
            value = match.group(1)
    return value


def journald_retention_problems(config: str, days: int) -> list[str]:
    """`config`: `systemd-analyze cat-config systemd/journald.conf` (every file and drop-in
    that can set it; the last value wins). Entries must go within `days`: MaxRetentionSec
    set (0 or empty means no time limit) and at most `days`, and journal files closed
    at least daily (journald deletes whole files, so MaxFileSec bounds how late)."""
    problems = []
    retention = _journal_setting(config, "MaxRetentionSec")
    seconds = systemd_span_seconds(retention) if retention else None
    if not seconds or seconds > days * 86400:
        problems.append(f"journald MaxRetentionSec is {retention!r}, the policy says {days}day")
    file_span = _journal_setting(config, "MaxFileSec")
    file_seconds = systemd_span_seconds(file_span) if file_span else None
    if not file_seconds or file_seconds > 86400:
        problems.append(
            f"journald MaxFileSec is {file_span!r}: journal files may hold entries past "
            "the period (at most 1day)"
        )
    return problems


FREQUENCY_DAYS = {"hourly": 1 / 24, "daily": 1, "weekly": 7, "monthly": 31, "yearly": 366}


@dataclass(frozen=True)
class RotationRule:
    """One logrotate stanza's effective settings (its own, else the global ones)."""

    where: str  # file and the stanza's paths
    frequency: str | None
    rotate: int
    maxage: int | None
    size_only: bool

    def longest_kept_days(self) -> float | None:
        """How old the oldest line kept can be: the current file's period, then the
        rotated files (their count, or maxage checked at each rotation). None: no bound
        (rotated by size alone)."""
        if self.size_only or self.frequency is None:
            return None
        period = FREQUENCY_DAYS[self.frequency]
        kept = self.rotate * period
        if self.maxage is not None:
            kept = min(kept, self.maxage + period)
        return period + kept


def _directives(lines: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in lines:
        words = line.split()
        if not words:
            continue
        if words[0] in FREQUENCY_DAYS:
            found["frequency"] = words[0]
        elif words[0] in ("rotate", "maxage", "size") and len(words) > 1:
            found[words[0]] = words[1]
    return found


def logrotate_rules(files: Mapping[str, str]) -> list[RotationRule]:
    """Every stanza of `files` (the main configuration first, then the included files),
    with the global directives of the main file applied where a stanza sets none."""
    defaults: dict[str, str] = {}
    rules = []
    for name, text in files.items():
        lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
        depth, head, script = 0, "", False
        body: list[str] = []
        for line in lines:
            if line in ("postrotate", "prerotate", "firstaction", "lastaction", "preremove"):
                script = True
                continue
            if line == "endscript":
                script = False
                continue
            if script or not line:
                continue
            if line.endswith("{"):
                depth, head, body = 1, line[:-1].strip(), []
                continue
            if line == "}" and depth:
                own = _directives(body)
                merged = {**defaults, **own}
                rules.append(
                    RotationRule(
                        where=f"{name}: {head}",
                        frequency=merged.get("frequency"),
                        rotate=int(merged.get("rotate", "0") or 0),
                        maxage=int(merged["maxage"]) if "maxage" in merged else None,
                        size_only="size" in own or ("size" in merged and "frequency" not in own),
                    )
                )
                depth = 0
                continue
            if depth:
                body.append(line)
            else:
                defaults.update(_directives([line]))
    return rules


def logrotate_problems(files: Mapping[str, str], days: int) -> list[str]:
    """Every stanza must let no line outlive `days` (a day of grace for the daily run)."""
    problems = []
    rules = logrotate_rules(files)
    if not rules:
        return ["no logrotate stanza found"]
    for rule in rules:
        longest = rule.longest_kept_days()
        if longest is None:
            problems.append(f"{rule.where}: rotated by size only, lines are kept without bound")
        elif longest > days + 1:
            problems.append(
                f"{rule.where}: {rule.frequency}, rotate {rule.rotate}, maxage {rule.maxage}: "
                f"lines kept up to {longest:.0f} days, the policy says {days}"
            )
    return problems
