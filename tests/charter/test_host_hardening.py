"""Every server hardened after ANSSI's BP-028, intermediate level (C10).

Each check compares what the host does with ANSSI's values (educloud.charter.hardening),
never with the inventory: a weakened variable fails it. docs/anssi-bp028.md maps the
recommendations to these checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from educloud.charter import hardening


def _in_container(target: Any) -> bool:
    return bool(target.run("systemd-detect-virt --container").rc == 0)


def _sysctl_problems(
    host_name: str, target: Any, reference: dict[str, str], evidence: Callable[[str], None]
) -> list[str]:
    """Live values (each interface's too), then those the next boot sets (sysctl.d, in
    systemd-sysctl's order), against `reference`."""
    live = hardening.parse_live(target.run(hardening.live_command(reference)).stdout)
    files = hardening.parse_dump(target.run(hardening.DUMP_SYSCTL_FILES).stdout)
    boot = hardening.boot_values(files)
    interfaces = sorted({k[3] for k in live if len(k) == 5 and k[2] == "conf"} - {"all", "default"})
    evidence(
        f"{host_name} : {len(reference)} paramètres lus dans /proc/sys"
        + (f" (et ceux de chaque interface : {', '.join(interfaces)})" if interfaces else "")
        + ", dont "
        + ", ".join(f"{k}={live.get(hardening.split_key(k), '?')}" for k in list(reference)[:3])
        + f" … ; fichiers appliqués au démarrage : {', '.join(sorted(files)) or 'aucun'}"
    )
    return hardening.live_problems(live, reference) + hardening.boot_problems(boot, reference, live)


@pytest.mark.charter("C10")
def test_network_stack_hardened_bp028(
    host_name: str, connect: Callable[[str], Any], evidence: Callable[[str], None]
) -> None:
    """R12 (IPv4) and R13 (IPv6 where the kernel has it), now and at the next boot. Each
    server has its own network stack, containers included."""
    target = connect(host_name)
    ipv6 = target.file("/proc/sys/net/ipv6").exists
    reference = hardening.network_reference(ipv6)
    problems = _sysctl_problems(host_name, target, reference, evidence)
    assert not problems, "; ".join(problems)


@pytest.mark.charter("C10")
def test_kernel_hardened_bp028(
    host_name: str, connect: Callable[[str], Any], evidence: Callable[[str], None]
) -> None:
    """R8, R9, R11, R14: the kernel's own settings, on a server with its own kernel."""
    target = connect(host_name)
    if _in_container(target):
        pytest.skip(
            f"{host_name} est un conteneur : son noyau est celui de la machine qui l'héberge, "
            "que le déploiement ne règle pas (non vérifiable ici)"
        )
    problems = _sysctl_problems(host_name, target, hardening.KERNEL, evidence)
    pattern = target.run("cat /proc/sys/kernel/core_pattern").stdout
    evidence(f"{host_name} : kernel.core_pattern {pattern.strip()}")
    problems += hardening.core_pattern_problems(pattern)
    assert not problems, "; ".join(problems)


@pytest.mark.charter("C10")
def test_no_core_dumps(
    host_name: str, connect: Callable[[str], Any], evidence: Callable[[str], None]
) -> None:
    """R14: a dump of Keycloak or PHP would hold sessions and secrets. Hard limit 0 for
    root and any other login (pam_limits; no core line may allow more, whoever it names),
    and for every service (DefaultLimitCORE, and each unit's LimitCORE)."""
    target = connect(host_name)
    files = hardening.parse_dump(target.run(hardening.DUMP_LIMITS_FILES).stdout)
    limits = {user: hardening.core_limits(files, user) for user in ("root", "nobody")}
    default = target.run("systemctl show --property DefaultLimitCORE --value").stdout
    units = hardening.parse_unit_limits(
        target.run("systemctl show '*.service' --property Id --property LimitCORE").stdout
    )
    # Observed too: a new session of each (runuser's PAM stack has pam_limits, as sshd's).
    observed = {
        user: target.run(f"runuser -u {user} -- sh -c 'ulimit -Hc'").stdout.strip()
        for user in limits
    }
    evidence(
        f"{host_name} : limite « core » stricte d'une nouvelle session de root "
        f"{observed['root']}, d'un autre compte (nobody) {observed['nobody']} ; "
        f"DefaultLimitCORE de systemd {default.strip()} ; {len(units)} unités chargées lues"
    )
    problems = hardening.core_dump_problems(limits, default, units)
    problems += hardening.core_line_problems(files)
    problems += [
        f"a new session of {user} gets a hard core limit of {value or 'nothing'}, not 0"
        for user, value in observed.items()
        if value != "0"
    ]
    assert not problems, "; ".join(problems)


@pytest.mark.charter("C10")
def test_login_defs_umask_restrictive(
    host_name: str, connect: Callable[[str], Any], evidence: Callable[[str], None]
) -> None:
    """login.defs's UMASK (new accounts' home directories, login(1)) at least 027. SSH
    sessions and services keep their own umask (022): docs/anssi-bp028.md, R36."""
    target = connect(host_name)
    text = target.file("/etc/login.defs").content_string
    evidence(f"{host_name} : /etc/login.defs UMASK {hardening.login_defs(text).get('UMASK')}")
    problems = hardening.umask_problems(text)
    assert not problems, "; ".join(problems)


@pytest.mark.charter("C10")
def test_unused_modules_never_loaded(
    host_name: str, connect: Callable[[str], Any], evidence: Callable[[str], None]
) -> None:
    """modprobe refuses each module; on a host with its own kernel, none is loaded either
    (in a container /sys/module is the kernel of the machine running it)."""
    target = connect(host_name)
    files = hardening.parse_dump(target.run(hardening.DUMP_MODPROBE_FILES).stdout)
    own_kernel = not _in_container(target)
    loaded = [
        module
        for module in hardening.DISABLED_MODULES
        if own_kernel and target.file(f"/sys/module/{module.replace('-', '_')}").exists
    ]
    evidence(
        f"{host_name} : modules refusés attendus {', '.join(hardening.DISABLED_MODULES)} ; "
        f"fichiers modprobe.d lus : {', '.join(sorted(files)) or 'aucun'} ; "
        + (f"chargés : {', '.join(loaded) or 'aucun'}" if own_kernel else "conteneur")
    )
    problems = hardening.module_problems(files)
    problems += [f"module {module} is loaded" for module in loaded]
    assert not problems, "; ".join(problems)


@pytest.mark.charter("C10")
def test_login_banner_legal_and_anonymous(
    host_name: str, connect: Callable[[str], Any], evidence: Callable[[str], None]
) -> None:
    """/etc/issue (with the /etc/issue.d/*.issue agetty prints after it) and /etc/issue.net.
    sshd shows no banner yet (docs/anssi-bp028.md, gap 10)."""
    target = connect(host_name)
    problems: list[str] = []
    extra = target.run("cat /etc/issue.d/*.issue 2>/dev/null; true").stdout
    for path in ("/etc/issue", "/etc/issue.net"):
        banner = target.file(path)
        text = banner.content_string if banner.exists else None
        if path == "/etc/issue" and text is not None:
            text += extra
        first = (text or "").strip().splitlines()[:1]
        evidence(f"{host_name} : {path} « {first[0] if first else ''} »")
        problems += hardening.banner_problems(path, text)
    assert not problems, "; ".join(problems)
