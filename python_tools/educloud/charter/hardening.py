"""Operating-system hardening read on a host, against ANSSI's BP-028 values (C10).

The reference is ANSSI's guide (*Recommandations de configuration d'un système GNU/Linux*,
v2.0, intermediate level; docs/anssi-bp028.md maps each recommendation), not the role's
variables: an inventory that weakens a value fails the check. The role that sets them is
roles/hardening. Each function takes what was read on the host and returns problems, in
English, each naming the setting, the value found, where it comes from and ANSSI's value.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

# R12: IPv4. arp_filter, arp_ignore and drop_gratuitous_arp are left out, as ANSSI asks a
# study where VRRP runs (keepalived); roles/hardening/defaults/main.yml says the same.
NETWORK_IPV4: dict[str, str] = {
    "net.ipv4.ip_forward": "0",
    "net.ipv4.conf.all.accept_local": "0",
    "net.ipv4.conf.all.accept_redirects": "0",
    "net.ipv4.conf.default.accept_redirects": "0",
    "net.ipv4.conf.all.secure_redirects": "0",
    "net.ipv4.conf.default.secure_redirects": "0",
    "net.ipv4.conf.all.shared_media": "0",
    "net.ipv4.conf.default.shared_media": "0",
    "net.ipv4.conf.all.accept_source_route": "0",
    "net.ipv4.conf.default.accept_source_route": "0",
    "net.ipv4.conf.all.route_localnet": "0",
    "net.ipv4.conf.all.rp_filter": "1",
    "net.ipv4.conf.default.rp_filter": "1",
    "net.ipv4.conf.all.send_redirects": "0",
    "net.ipv4.conf.default.send_redirects": "0",
    "net.ipv4.icmp_ignore_bogus_error_responses": "1",
    "net.ipv4.ip_local_port_range": "32768 65535",
    "net.ipv4.tcp_rfc1337": "1",
    "net.ipv4.tcp_syncookies": "1",
}
# R13, where the kernel has IPv6 (without it, R13's first choice is met).
NETWORK_IPV6: dict[str, str] = {
    "net.ipv6.conf.all.accept_ra": "0",
    "net.ipv6.conf.default.accept_ra": "0",
    "net.ipv6.conf.all.accept_redirects": "0",
    "net.ipv6.conf.default.accept_redirects": "0",
    "net.ipv6.conf.all.accept_source_route": "0",
    "net.ipv6.conf.default.accept_source_route": "0",
    "net.ipv6.conf.all.autoconf": "0",
    "net.ipv6.conf.default.autoconf": "0",
    "net.ipv6.conf.all.router_solicitations": "0",
    "net.ipv6.conf.default.router_solicitations": "0",
    "net.ipv6.conf.all.max_addresses": "1",
    "net.ipv6.conf.default.max_addresses": "1",
}
# R8 (vm.mmap_min_addr), R9, R11, R14: the kernel's own, on a host that has one.
KERNEL: dict[str, str] = {
    "kernel.dmesg_restrict": "1",
    "kernel.kptr_restrict": "2",
    "kernel.perf_event_paranoid": "2",
    "kernel.randomize_va_space": "2",
    "kernel.sysrq": "0",
    "kernel.unprivileged_bpf_disabled": "1",
    "kernel.yama.ptrace_scope": "1",
    "net.core.bpf_jit_harden": "2",
    "fs.suid_dumpable": "0",
    "fs.protected_fifos": "2",
    "fs.protected_regular": "2",
    "fs.protected_symlinks": "1",
    "fs.protected_hardlinks": "1",
    "vm.mmap_min_addr": "65536",
}
# Values where a larger number is stricter (any value at or above ANSSI's passes).
AT_LEAST = frozenset(
    {
        "kernel.kptr_restrict",
        "kernel.perf_event_paranoid",
        "kernel.yama.ptrace_scope",
        "vm.mmap_min_addr",
    }
)
DISABLED_MODULES = ("dccp", "sctp", "rds", "tipc", "usb-storage", "firewire-core")
# At least this umask (R36 asks 027 for services): nothing for others, no group write.
UMASK_REQUIRED = 0o027

# sysctl.d(5): these folders, a file of /etc overriding one of the same name further down
# (a link to /dev/null masks it); all files then applied in the lexical order of their
# names, a later value winning, an explicit key winning over a glob. Debian reads
# /etc/sysctl.conf through its link /etc/sysctl.d/99-sysctl.conf, in that name's place
# (procps.service is systemd-sysctl.service there).
SYSCTL_DIRS = (
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
)
MODPROBE_DIRS = (
    "/etc/modprobe.d",
    "/run/modprobe.d",
    "/usr/local/lib/modprobe.d",
    "/usr/lib/modprobe.d",
    "/lib/modprobe.d",
)
DUMP_MARKER = "==> "


def _dump_command(patterns: Iterable[str]) -> str:
    """One shell command printing each file matching `patterns` after a marker line. A link
    to /dev/null exists and prints nothing: it reads as an empty file, which it is for the
    tool that masks by it. /lib, a link to /usr/lib on Debian 12, is printed under each name
    (the folders are then merged by name)."""
    return (
        f"for f in {' '.join(patterns)}; do "
        f'[ -e "$f" ] && printf \'{DUMP_MARKER}%s\\n\' "$f" && cat "$f"; done; true'
    )


DUMP_SYSCTL_FILES = _dump_command(f"{d}/*.conf" for d in SYSCTL_DIRS)
LIMITS_CONF = "/etc/security/limits.conf"
DUMP_LIMITS_FILES = _dump_command([LIMITS_CONF, "/etc/security/limits.d/*.conf"])
DUMP_MODPROBE_FILES = _dump_command(f"{d}/*.conf" for d in MODPROBE_DIRS)

# How the kernel combines an IPv4 interface's setting with `all` (include/linux/inetdevice.h:
# IN_DEV_ORCONF, IN_DEV_ANDCONF, IN_DEV_MAXCONF; accept_redirects is ORCONF when the host does
# not forward, which R12 asks).
IPV4_COMBINE: dict[str, str] = {
    "accept_redirects": "or",
    "secure_redirects": "or",
    "send_redirects": "or",
    "shared_media": "or",
    "accept_local": "or",
    "route_localnet": "or",
    "log_martians": "or",
    "accept_source_route": "and",
    "rp_filter": "max",
}
# IPv6 reads these from each interface alone: `all` and `default` change no interface that
# already exists (net/ipv6/addrconf.c, ndisc.c).
IPV6_PER_INTERFACE = frozenset(
    {"accept_ra", "accept_redirects", "autoconf", "router_solicitations", "max_addresses"}
)
_NOT_INTERFACES = frozenset({"all", "default"})

Key = tuple[str, ...]


def split_key(key: str) -> Key:
    """A sysctl name as its path's parts (sysctl.d(5)): "." separates, and "/" stands for a
    dot inside a part (an interface eth0.100), unless the first separator is "/", when "/"
    separates and dots are kept."""
    key = key.strip()
    first = min((i for i in (key.find("."), key.find("/")) if i >= 0), default=-1)
    if first >= 0 and key[first] == "/":
        return tuple(key.strip("/").split("/"))
    return tuple(part.replace("/", ".") for part in key.split("."))


def dotted(parts: Key) -> str:
    return ".".join(part.replace(".", "/") for part in parts)


def _interface_key(parts: Key) -> bool:
    return len(parts) == 5 and parts[0] == "net" and parts[2] == "conf"


def live_command(reference: Iterable[str]) -> str:
    """One shell command printing, from /proc/sys, every reference setting and, for the
    per-interface ones, every interface's ("net/ipv4/conf/eth0/rp_filter = 1" lines)."""
    paths = set()
    for key in reference:
        parts = split_key(key)
        if _interface_key(parts):
            paths.add(f"net/{parts[1]}/conf/*/{parts[4]}")
        else:
            paths.add("/".join(parts))
    return (
        f'cd /proc/sys && for f in {" ".join(sorted(paths))}; do [ -f "$f" ] && '
        "printf '%s = %s\\n' \"$f\" \"$(tr '\\t' ' ' < \"$f\")\"; done; true"
    )


def parse_live(output: str) -> dict[Key, str]:
    """`live_command`'s output: {path parts: value}."""
    values: dict[Key, str] = {}
    for line in output.splitlines():
        path, sep, value = line.partition(" = ")
        if sep:
            values[tuple(path.strip().split("/"))] = _normal(value)
    return values


def recommendation(parts: Key) -> str:
    """The BP-028 recommendation a setting belongs to."""
    key = dotted(parts)
    if key.startswith("net.ipv4."):
        return "R12"
    if key.startswith("net.ipv6."):
        return "R13"
    if key.startswith("kernel.yama."):
        return "R11"
    if key.startswith("fs."):
        return "R14"
    if key.startswith("vm."):
        return "R8"
    return "R9"


def network_reference(ipv6: bool) -> dict[str, str]:
    return {**NETWORK_IPV4, **(NETWORK_IPV6 if ipv6 else {})}


def _normal(value: str) -> str:
    return " ".join(value.split())


def parse_dump(output: str) -> dict[str, str]:
    """The files printed by a DUMP_* command: {path: content}."""
    files: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith(DUMP_MARKER):
            current = files.setdefault(line[len(DUMP_MARKER) :].strip(), [])
        elif current is not None:
            current.append(line)
    return {path: "\n".join(lines) for path, lines in files.items()}


def _complies(parts: Key, found: str, wanted: str) -> bool:
    if dotted(parts) in AT_LEAST and found.lstrip("-").isdigit():
        return int(found) >= int(wanted)
    return _normal(found) == _normal(wanted)


def _combined(attr: str, all_value: str, own: str) -> str:
    """The value in force on an IPv4 interface, from `all` and its own."""
    how = IPV4_COMBINE[attr]
    a, b = int(all_value), int(own)
    if how == "max":
        return str(max(a, b))
    if how == "and":
        return str(int(bool(a) and bool(b)))
    return str(int(bool(a) or bool(b)))


def _interface_problems(
    values: Mapping[Key, str],
    reference: Mapping[str, str],
    when: str,
    origin: Mapping[Key, str] | None = None,
) -> list[str]:
    """Each interface of `values` (net.ipvX.conf.<interface>.<attr>) against the reference
    of `all`: IPv4 as the kernel combines it with `all`, IPv6 on its own value."""
    problems = []
    for key, wanted in reference.items():
        parts = split_key(key)
        if not _interface_key(parts) or parts[3] != "all":
            continue
        family, attr = parts[1], parts[4]
        for other in sorted(values):
            if not _interface_key(other) or other[1] != family or other[4] != attr:
                continue
            if other[3] in _NOT_INTERFACES:
                continue
            own = values[other]
            said = f"{when} ({origin[other]})" if origin and other in origin else when
            if family == "ipv4" and attr in IPV4_COMBINE:
                all_value = values.get(("net", "ipv4", "conf", "all", attr))
                if all_value is None or not own.isdigit() or not all_value.isdigit():
                    continue  # `all` itself is reported missing
                in_force = _combined(attr, all_value, own)
                if in_force != wanted:
                    problems.append(
                        f"{dotted(other)} is {own} {said}, so "
                        f"{in_force} in force on {other[3]} with all's {all_value}: ANSSI "
                        f"BP-028 R12 asks {wanted}"
                    )
            elif (
                family == "ipv6"
                and attr in IPV6_PER_INTERFACE
                and not _complies(other, own, wanted)
            ):
                problems.append(
                    f"{dotted(other)} is {own} {said} (IPv6 reads "
                    f"each interface's own): ANSSI BP-028 R13 asks {wanted}"
                )
    return problems


Found = tuple[str, str]  # a value and where it comes from


def _setting_problems(
    reference: Mapping[str, str],
    lookup: Callable[[Key], Found | None],
    missing: Callable[[str, str, str], str],
    differs: Callable[[str, str, str, Found], str],
) -> list[str]:
    """Each reference setting `lookup` finds with ANSSI's value: `missing(key, R, wanted)`
    or `differs(key, R, wanted, found)` words the problem."""
    problems = []
    for key, wanted in reference.items():
        parts = split_key(key)
        found = lookup(parts)
        if found is None:
            problems.append(missing(key, recommendation(parts), wanted))
        elif not _complies(parts, found[0], wanted):
            problems.append(differs(key, recommendation(parts), wanted, found))
    return problems


def live_problems(live: Mapping[Key, str], reference: Mapping[str, str]) -> list[str]:
    """Every reference setting in force now with ANSSI's value, each interface's included
    (a reference setting missing is a problem: the kernel cannot be said to comply)."""
    problems = _setting_problems(
        reference,
        lambda parts: (live[parts], "") if parts in live else None,
        lambda key, r, _: f"{key} cannot be read on the host (ANSSI BP-028 {r})",
        lambda key, r, wanted, found: f"{key} is {found[0]} now, ANSSI BP-028 {r} asks {wanted}",
    )
    return problems + _interface_problems(live, reference, "now")


def _config_order(files: Mapping[str, str], folders: tuple[str, ...]) -> list[str]:
    """The files a tool reading `folders` in their precedence applies, in its order: for each
    name, the first folder's, then sorted by name (systemd's drop-in rule)."""
    chosen: dict[str, str] = {}
    for folder in folders:
        for path in sorted(p for p in files if str(PurePosixPath(p).parent) == folder):
            chosen.setdefault(PurePosixPath(path).name, path)
    return [chosen[name] for name in sorted(chosen)]


@dataclass(frozen=True)
class BootSettings:
    """What the next boot sets: explicit keys (the last assignment of each), and globs in
    the order met (the last matching one applies where no explicit key does)."""

    explicit: dict[Key, tuple[str, str]]
    globs: list[tuple[Key, str, str]]

    def value(self, parts: Key) -> tuple[str, str] | None:
        if parts in self.explicit:
            return self.explicit[parts]
        found = None
        for pattern, value, path in self.globs:
            if len(pattern) == len(parts) and all(
                fnmatch.fnmatchcase(part, glob) for part, glob in zip(parts, pattern, strict=True)
            ):
                found = (value, path)
        return found


def boot_values(files: Mapping[str, str]) -> BootSettings:
    """What the next boot sets, from every file of SYSCTL_DIRS in systemd-sysctl's order. A
    line starting with "-" (error ignored) sets its value too."""
    explicit: dict[Key, tuple[str, str]] = {}
    globs: list[tuple[Key, str, str]] = []
    for path in _config_order(files, SYSCTL_DIRS):
        for raw in files[path].splitlines():
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            key, sep, value = line.partition("=")
            if not sep:
                continue
            parts = split_key(key.strip().lstrip("-").strip())
            if any(c in part for part in parts for c in "*?["):
                globs.append((parts, _normal(value), path))
            else:
                explicit[parts] = (_normal(value), path)
    return BootSettings(explicit, globs)


def boot_problems(
    boot: BootSettings, reference: Mapping[str, str], interfaces: Iterable[Key] = ()
) -> list[str]:
    """Every reference setting is written where the next boot applies it, with ANSSI's
    value (a value set only at run time is lost at the next boot); and each interface of
    `interfaces` (live keys, net.ipvX.conf.<interface>.<attr>) gets, at the next boot, its
    own key, a glob's, or `default`'s, then judged as `live_problems` judges it."""
    problems = _setting_problems(
        reference,
        boot.value,
        lambda key, r, wanted: (
            f"{key} is set in no sysctl.d file: the next boot leaves the kernel's default "
            f"(ANSSI BP-028 {r} asks {wanted})"
        ),
        lambda key, r, wanted, found: (
            f"{key} = {found[0]} in {found[1]}: the next boot sets it so, ANSSI BP-028 {r} "
            f"asks {wanted}"
        ),
    )
    values: dict[Key, str] = {}
    origin: dict[Key, str] = {}
    for parts in {*(split_key(k) for k in reference), *interfaces}:
        if not _interface_key(parts):
            continue
        found = boot.value(parts)
        if found is None and parts[3] not in _NOT_INTERFACES:
            found = boot.value((*parts[:3], "default", parts[4]))
            if found is not None:
                found = (found[0], f"{found[1]}, default's")
        if found is not None:
            values[parts], origin[parts] = found
    return problems + _interface_problems(values, reference, "at the next boot", origin)


# pam_limits lower-cases the type and the item, and ignores fields after the value.
_LIMIT = re.compile(r"^(\S+)\s+(soft|hard|-)\s+core\s+(\S+)(\s.*)?$", re.IGNORECASE)


def _limit_lines(files: Mapping[str, str]) -> Iterable[tuple[str, str, str, str, str]]:
    """(domain, type, value, file, line) of every core line, limits.conf first, then
    limits.d/*.conf in lexical order (pam_limits(8))."""
    order = [LIMITS_CONF] if LIMITS_CONF in files else []
    order += sorted(p for p in files if p != LIMITS_CONF)
    for path in order:
        for raw in files[path].splitlines():
            line = raw.split("#", 1)[0].strip()
            match = _LIMIT.match(line)
            if match:
                domain, kind, value = match.group(1), match.group(2).lower(), match.group(3)
                yield domain, kind, value, path, line


def core_limits(files: Mapping[str, str], user: str) -> dict[str, tuple[str, str]]:
    """{"soft"|"hard": (value, file)} pam_limits gives `user` for core dumps. A line naming
    the user beats @group and wildcard lines, wherever it is; among lines of the same kind a
    later one wins. Wildcard lines never apply to root (limits.conf(5)). Groups and uid
    ranges are not resolved here: `core_line_problems` refuses any line allowing a dump."""
    rank = {"user": 3, "group": 2, "wildcard": 1}
    found: dict[str, tuple[int, str, str]] = {}
    for domain, kind, value, path, _ in _limit_lines(files):
        if domain == user:
            level = rank["user"]
        elif domain.startswith(("@", "%")):
            level = rank["group"]
        elif domain == "*" and user != "root":
            level = rank["wildcard"]
        else:
            continue
        for which in ("soft", "hard") if kind == "-" else (kind,):
            if which not in found or level >= found[which][0]:
                found[which] = (level, value, path)
    return {which: (value, path) for which, (_, value, path) in found.items()}


def core_line_problems(files: Mapping[str, str]) -> list[str]:
    """Any core line with another value than 0, whoever it names (an account, a group, a
    uid range): no login may dump core, so no line may allow it."""
    return [
        f"{path}: '{line}' lets {domain} dump core"
        for domain, _, value, path, line in _limit_lines(files)
        if value != "0"
    ]


def parse_unit_limits(output: str) -> dict[str, str]:
    """`systemctl show '*.service' -p Id -p LimitCORE` output: {unit: LimitCORE}. One block
    per unit, separated by an empty line; the properties come in systemd's order (a
    service's LimitCORE before the unit's Id), and a unit without processes has none."""
    units: dict[str, str] = {}
    for block in output.split("\n\n"):
        properties = dict(line.partition("=")[::2] for line in block.splitlines() if "=" in line)
        if properties.get("Id") and "LimitCORE" in properties:
            units[properties["Id"].strip()] = properties["LimitCORE"].strip()
    return units


def core_dump_problems(
    limits: Mapping[str, Mapping[str, tuple[str, str]]],
    default_limit_core: str,
    unit_limits: Mapping[str, str] | None = None,
) -> list[str]:
    """No core dump (R14): a hard limit of 0 for every login (`limits`: {user: core_limits})
    and for every service (systemd's DefaultLimitCORE, and each unit's LimitCORE, which a
    drop-in may set)."""
    problems = []
    for user, found in limits.items():
        hard = found.get("hard")
        if hard is None:
            problems.append(f"no hard core limit for {user} in limits.conf or limits.d")
        elif hard[0] != "0":
            problems.append(f"the hard core limit of {user} is {hard[0]} ({hard[1]}), not 0")
    if default_limit_core.strip() != "0":
        problems.append(f"systemd's DefaultLimitCORE is {default_limit_core.strip()!r}, not 0")
    for unit, value in sorted((unit_limits or {}).items()):
        if value != "0":
            problems.append(f"{unit} may dump core (LimitCORE={value})")
    return problems


def core_pattern_problems(pattern: str) -> list[str]:
    """A pipe in kernel.core_pattern ignores every core limit (fs/coredump.c) unless its
    handler honours them, as systemd-coredump does (with its Storage=none)."""
    pattern = pattern.strip()
    if pattern.startswith("|") and not re.match(
        r"^\|/(usr/)?lib/systemd/systemd-coredump(\s|$)", pattern
    ):
        return [f"kernel.core_pattern pipes dumps to {pattern[1:].split()[0]}, whatever the limits"]
    return []


def login_defs(text: str) -> dict[str, list[str]]:
    """Every value of each setting of login.defs, in file order."""
    settings: dict[str, list[str]] = {}
    for raw in text.splitlines():
        parts = raw.split("#", 1)[0].split()
        if len(parts) >= 2:
            settings.setdefault(parts[0].upper(), []).append(parts[1])
    return settings


def _c_number(text: str) -> int:
    """A number as shadow reads it (strtol with base 0, lib/getlong.c): 0x.. hexadecimal,
    0.. octal, else decimal."""
    if text.lower().startswith("0x"):
        return int(text[2:], 16)
    if text.startswith("0") and len(text) > 1:
        return int(text[1:], 8)
    return int(text, 10)


def umask_problems(text: str) -> list[str]:
    """login.defs's UMASK at least 027 (Lynis AUTH-9328), read as shadow reads it: "27" is
    decimal 27, octal 033. Set twice is refused: pam_umask takes the first, others the last."""
    values = login_defs(text).get("UMASK", [])
    if not values:
        return ["/etc/login.defs sets no UMASK (Debian's default is 022)"]
    if len(values) > 1:
        return [f"/etc/login.defs sets UMASK {len(values)} times ({', '.join(values)})"]
    umask = values[0]
    try:
        value = _c_number(umask)
    except ValueError:
        return [f"/etc/login.defs: UMASK {umask} is not a number"]
    if value & UMASK_REQUIRED != UMASK_REQUIRED:
        return [f"/etc/login.defs: UMASK {umask} (octal {value:03o}) leaves more than 027 allows"]
    return []


def _module(name: str) -> str:
    return name.replace("-", "_")


REFUSING = frozenset({"/bin/false", "/bin/true", "/usr/bin/false", "/usr/bin/true"})


def module_problems(
    files: Mapping[str, str], modules: Iterable[str] = DISABLED_MODULES
) -> list[str]:
    """Each module's install command, as modprobe finds it (the files of MODPROBE_DIRS in
    kmod's order, the first install line whose name pattern matches, "-" and "_" alike,
    libkmod-module.c), is /bin/false or /bin/true."""
    installs: list[tuple[str, str, str]] = []
    for path in _config_order(files, MODPROBE_DIRS):
        for raw in files[path].splitlines():
            parts = raw.split("#", 1)[0].split(None, 2)
            if len(parts) == 3 and parts[0] == "install":
                installs.append((_module(parts[1]), parts[2].strip(), path))
    problems = []
    for module in modules:
        first = next(
            ((c, p) for pattern, c, p in installs if fnmatch.fnmatchcase(_module(module), pattern)),
            None,
        )
        if first is None:
            problems.append(f"module {module} can be loaded (no install {module} /bin/false)")
        elif first[0] not in REFUSING:
            problems.append(
                f"module {module} has another install command first: {first[0]!r} ({first[1]})"
            )
    return problems


# getty's escapes that print the system's name, release, version, machine, domain and
# os-release's name (agetty(8)).
_BANNER_ESCAPES = re.compile(r"\\[srvmoS]")
_BANNER_NAMES = re.compile(r"debian|ubuntu|gnu/linux|linux \d", re.IGNORECASE)


def banner_problems(path: str, text: str | None) -> list[str]:
    """A legal banner is there, and it does not tell a visitor which system it is."""
    if text is None or not text.strip():
        return [f"{path} is missing or empty (no legal banner)"]
    problems = []
    if _BANNER_ESCAPES.search(text):
        problems.append(f"{path} prints the system's name or version (getty escape)")
    if _BANNER_NAMES.search(text):
        problems.append(f"{path} names the operating system")
    return problems
