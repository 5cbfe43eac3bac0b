"""educloud.charter.hardening: ANSSI BP-028 values read from a host's outputs and files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from educloud.charter import hardening
from educloud.paths import repo_root

ROLE_FILE = "/etc/sysctl.d/99-zz-educloud-network.conf"


def _role_defaults() -> dict[str, object]:
    text = (repo_root() / "roles/hardening/defaults/main.yml").read_text(encoding="utf-8")
    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict)
    return loaded


def _file(settings: dict[str, str]) -> str:
    return "".join(f"{k} = {v}\n" for k, v in settings.items())


def _live(settings: dict[str, str]) -> dict[hardening.Key, str]:
    return {hardening.split_key(k): v for k, v in settings.items()}


def test_role_defaults_meet_the_reference() -> None:
    """The role's defaults comply with what the check asks (a stricter value is fine)."""
    defaults = _role_defaults()
    for name, reference in (
        ("hardening_sysctl_network", hardening.NETWORK_IPV4),
        ("hardening_sysctl_ipv6", hardening.NETWORK_IPV6),
        ("hardening_sysctl_kernel", hardening.KERNEL),
    ):
        values = defaults[name]
        assert isinstance(values, dict)
        live = _live({str(k): str(v) for k, v in values.items()})
        assert hardening.live_problems(live, reference) == [], name
    assert tuple(defaults["hardening_modules_disabled"]) == hardening.DISABLED_MODULES  # type: ignore[arg-type]


def test_role_interface_attributes_are_those_the_check_combines() -> None:
    text = (repo_root() / "roles/hardening/vars/main.yml").read_text(encoding="utf-8")
    role = yaml.safe_load(text)
    assert set(role["hardening_ipv4_interface_attrs"]) == set(hardening.IPV4_COMBINE)
    assert set(role["hardening_ipv6_interface_attrs"]) == hardening.IPV6_PER_INTERFACE


def test_keys_with_slashes_and_dots() -> None:
    assert hardening.split_key("net.ipv4.conf.eth0/100.rp_filter") == (
        "net", "ipv4", "conf", "eth0.100", "rp_filter",
    )  # fmt: skip
    assert hardening.split_key("net/ipv4/conf/eth0.100/rp_filter") == (
        "net", "ipv4", "conf", "eth0.100", "rp_filter",
    )  # fmt: skip
    assert hardening.dotted(("net", "ipv4", "conf", "eth0.100", "rp_filter")) == (
        "net.ipv4.conf.eth0/100.rp_filter"
    )


def test_live_output_with_tabs_compares_equal() -> None:
    live = hardening.parse_live("net/ipv4/ip_local_port_range = 32768\t65535\n")
    assert hardening.live_problems(live, {"net.ipv4.ip_local_port_range": "32768 65535"}) == []


def test_live_value_differing_or_unreadable_is_named() -> None:
    live = hardening.parse_live("net/ipv4/conf/all/accept_redirects = 1\n")
    problems = hardening.live_problems(
        live, {"net.ipv4.conf.all.accept_redirects": "0", "net.ipv4.tcp_syncookies": "1"}
    )
    assert problems == [
        "net.ipv4.conf.all.accept_redirects is 1 now, ANSSI BP-028 R12 asks 0",
        "net.ipv4.tcp_syncookies cannot be read on the host (ANSSI BP-028 R12)",
    ]


REFERENCE = {
    "net.ipv4.conf.all.accept_redirects": "0",
    "net.ipv4.conf.all.rp_filter": "1",
    "net.ipv4.conf.all.accept_source_route": "0",
    "net.ipv6.conf.all.accept_ra": "0",
}
GOOD = {
    "net/ipv4/conf/all/accept_redirects": "0",
    "net/ipv4/conf/all/rp_filter": "1",
    "net/ipv4/conf/all/accept_source_route": "0",
    "net/ipv6/conf/all/accept_ra": "0",
    "net/ipv4/conf/eth0/accept_redirects": "0",
    "net/ipv4/conf/eth0/rp_filter": "0",
    "net/ipv4/conf/eth0/accept_source_route": "1",
    "net/ipv6/conf/eth0/accept_ra": "0",
}


def _from(values: dict[str, str]) -> dict[hardening.Key, str]:
    return hardening.parse_live("".join(f"{k} = {v}\n" for k, v in values.items()))


def test_interfaces_judged_as_the_kernel_combines_them() -> None:
    # rp_filter: max(all 1, eth0 0) = 1; accept_source_route: all 0 AND eth0 1 = 0.
    assert hardening.live_problems(_from(GOOD), REFERENCE) == []
    redirects = _from({**GOOD, "net/ipv4/conf/eth0/accept_redirects": "1"})
    assert hardening.live_problems(redirects, REFERENCE) == [
        "net.ipv4.conf.eth0.accept_redirects is 1 now, so 1 in force on eth0 with all's 0: "
        "ANSSI BP-028 R12 asks 0"
    ]
    loose = _from({**GOOD, "net/ipv4/conf/eth0/rp_filter": "2"})
    assert hardening.live_problems(loose, REFERENCE) == [
        "net.ipv4.conf.eth0.rp_filter is 2 now, so 2 in force on eth0 with all's 1: "
        "ANSSI BP-028 R12 asks 1"
    ]


def test_ipv6_interfaces_judged_on_their_own_value() -> None:
    ra = _from({**GOOD, "net/ipv6/conf/eth0/accept_ra": "2"})
    assert hardening.live_problems(ra, REFERENCE) == [
        "net.ipv6.conf.eth0.accept_ra is 2 now (IPv6 reads each interface's own): ANSSI "
        "BP-028 R13 asks 0"
    ]


def test_stricter_numbers_pass_where_more_is_stricter() -> None:
    reference = {"kernel.kptr_restrict": "2", "vm.mmap_min_addr": "65536", "kernel.sysrq": "0"}
    live = _live({"kernel.kptr_restrict": "2", "vm.mmap_min_addr": "131072", "kernel.sysrq": "176"})
    assert hardening.live_problems(live, reference) == [
        "kernel.sysrq is 176 now, ANSSI BP-028 R9 asks 0"
    ]
    weaker = _live({"kernel.kptr_restrict": "1", "vm.mmap_min_addr": "65536", "kernel.sysrq": "0"})
    assert hardening.live_problems(weaker, reference) == [
        "kernel.kptr_restrict is 1 now, ANSSI BP-028 R9 asks 2"
    ]


def test_a_later_file_wins_at_boot() -> None:
    files = {
        ROLE_FILE: _file({"net.ipv4.conf.all.send_redirects": "0"}),
        "/etc/sysctl.d/99-zzz-break.conf": "# comment\nnet.ipv4.conf.all.send_redirects=1\n",
    }
    problems = hardening.boot_problems(
        hardening.boot_values(files), {"net.ipv4.conf.all.send_redirects": "0"}
    )
    assert problems == [
        "net.ipv4.conf.all.send_redirects = 1 in /etc/sysctl.d/99-zzz-break.conf: the next "
        "boot sets it so, ANSSI BP-028 R12 asks 0"
    ]


def test_sysctl_conf_is_read_in_its_links_place_not_last() -> None:
    """Debian: /etc/sysctl.conf is applied through /etc/sysctl.d/99-sysctl.conf, so a file
    named after it wins (the dump prints the link's target under the link's name)."""
    files = {
        "/etc/sysctl.d/99-sysctl.conf": "net.ipv4.ip_forward = 0\n",
        "/etc/sysctl.d/local.conf": "net.ipv4.ip_forward = 1\n",
    }
    boot = hardening.boot_values(files)
    assert boot.value(("net", "ipv4", "ip_forward")) == ("1", "/etc/sysctl.d/local.conf")


def test_etc_masks_a_vendor_file_of_the_same_name() -> None:
    files = {
        "/usr/lib/sysctl.d/99-protect-links.conf": "fs.protected_fifos = 1\n",
        "/etc/sysctl.d/99-protect-links.conf": "",  # a link to /dev/null prints nothing
        "/etc/sysctl.d/50-x.conf": "fs.protected_fifos = 2\n",
        "/usr/lib/sysctl.d/50-pid-max.conf": "-kernel/pid_max = 4194304\n",
    }
    boot = hardening.boot_values(files)
    assert boot.value(("fs", "protected_fifos")) == ("2", "/etc/sysctl.d/50-x.conf")
    # Slashes and the "-" (ignore errors) prefix name the same key.
    assert boot.value(("kernel", "pid_max")) == ("4194304", "/usr/lib/sysctl.d/50-pid-max.conf")


def test_the_role_file_wins_over_debians_protect_links() -> None:
    files = {
        "/usr/lib/sysctl.d/99-protect-links.conf": "fs.protected_fifos = 1\n",
        "/etc/sysctl.d/99-zz-educloud-kernel.conf": "fs.protected_fifos = 2\n",
    }
    assert hardening.boot_problems(hardening.boot_values(files), {"fs.protected_fifos": "2"}) == []


def test_globs_apply_where_no_explicit_key_does() -> None:
    files = {
        ROLE_FILE: _file(
            {"net.ipv4.conf.all.accept_redirects": "0", "net.ipv4.conf.eth0.accept_redirects": "0"}
        ),
        "/etc/sysctl.d/99-zzz-local.conf": "net.ipv4.conf.*.accept_redirects = 1\n",
    }
    boot = hardening.boot_values(files)
    # eth0 and all are set explicitly: systemd-sysctl leaves them to the role's file.
    assert boot.value(("net", "ipv4", "conf", "eth0", "accept_redirects"))[0] == "0"  # type: ignore[index]
    live = _from(
        {"net/ipv4/conf/all/accept_redirects": "0", "net/ipv4/conf/eth1/accept_redirects": "0"}
    )
    problems = hardening.boot_problems(boot, {"net.ipv4.conf.all.accept_redirects": "0"}, live)
    assert problems == [
        "net.ipv4.conf.eth1.accept_redirects is 1 at the next boot "
        "(/etc/sysctl.d/99-zzz-local.conf), so 1 in force on eth1 with all's 0: "
        "ANSSI BP-028 R12 asks 0"
    ]


def test_an_interface_with_no_key_gets_defaults_value_at_boot() -> None:
    files = {
        ROLE_FILE: _file(
            {"net.ipv6.conf.all.accept_ra": "0", "net.ipv6.conf.default.accept_ra": "1"}
        )
    }
    live = _from({"net/ipv6/conf/eth0/accept_ra": "0"})
    problems = hardening.boot_problems(
        hardening.boot_values(files), {"net.ipv6.conf.all.accept_ra": "0"}, live
    )
    assert problems == [
        f"net.ipv6.conf.eth0.accept_ra is 1 at the next boot ({ROLE_FILE}, default's) (IPv6 "
        "reads each interface's own): ANSSI BP-028 R13 asks 0"
    ]


def test_a_setting_in_no_file_is_lost_at_boot() -> None:
    assert hardening.boot_problems(hardening.boot_values({}), {"net.ipv4.tcp_syncookies": "1"}) == [
        "net.ipv4.tcp_syncookies is set in no sysctl.d file: the next boot leaves the "
        "kernel's default (ANSSI BP-028 R12 asks 1)"
    ]


def test_dump_is_split_by_file() -> None:
    out = "==> /etc/a.conf\nx = 1\n\n==> /etc/b.conf\ny = 2\n"
    assert hardening.parse_dump(out) == {"/etc/a.conf": "x = 1\n", "/etc/b.conf": "y = 2"}


ROLE_LIMITS = {
    "/etc/security/limits.conf": "# Debian's file, all commented\n#*  soft  core  0\n",
    "/etc/security/limits.d/90-educloud-coredumps.conf": (
        "*  soft core 0\n*  hard core 0\nroot soft core 0\nroot hard core 0\n"
    ),
}


def test_role_limits_give_no_core_to_root_and_others() -> None:
    limits = {u: hardening.core_limits(ROLE_LIMITS, u) for u in ("root", "pupil")}
    assert hardening.core_dump_problems(limits, "0") == []


def test_wildcard_never_applies_to_root() -> None:
    files = {"/etc/security/limits.d/x.conf": "* hard core 0\n"}
    limits = {"root": hardening.core_limits(files, "root")}
    assert hardening.core_dump_problems(limits, "0") == [
        "no hard core limit for root in limits.conf or limits.d"
    ]


def test_later_root_line_wins_but_a_later_wildcard_does_not_beat_a_user_line() -> None:
    later_root = {**ROLE_LIMITS, "/etc/security/limits.d/99-break.conf": "root - core unlimited\n"}
    root = hardening.core_limits(later_root, "root")
    assert root["hard"] == ("unlimited", "/etc/security/limits.d/99-break.conf")
    later_wildcard = {**ROLE_LIMITS, "/etc/security/limits.d/99-x.conf": "* hard core unlimited\n"}
    assert hardening.core_limits(later_wildcard, "root")["hard"][0] == "0"
    assert hardening.core_limits(later_wildcard, "pupil")["hard"][0] == "unlimited"


def test_services_may_dump_core_is_named() -> None:
    limits = {"root": hardening.core_limits(ROLE_LIMITS, "root")}
    assert hardening.core_dump_problems(limits, "infinity\n") == [
        "systemd's DefaultLimitCORE is 'infinity', not 0"
    ]
    # systemd prints a service's LimitCORE before its Id; a target has no LimitCORE.
    units = hardening.parse_unit_limits(
        "LimitCORE=infinity\nId=ssh.service\n\nId=graphical.target\n\n"
        "LimitCORE=0\nId=cron.service\n"
    )
    assert units == {"ssh.service": "infinity", "cron.service": "0"}
    assert hardening.core_dump_problems(limits, "0", units) == [
        "ssh.service may dump core (LimitCORE=infinity)"
    ]


def test_any_core_line_allowing_a_dump_is_refused_whoever_it_names() -> None:
    assert hardening.core_line_problems(ROLE_LIMITS) == []
    for line in ("1000: hard core unlimited", "@staff - core 1024", "alice HARD CORE unlimited x"):
        files = {**ROLE_LIMITS, "/etc/security/limits.d/99-x.conf": line + "\n"}
        assert hardening.core_line_problems(files) == [
            f"/etc/security/limits.d/99-x.conf: '{line}' lets {line.split()[0]} dump core"
        ]


def test_core_pattern_pipes() -> None:
    assert hardening.core_pattern_problems("core\n") == []
    assert hardening.core_pattern_problems("|/lib/systemd/systemd-coredump %P %u %g") == []
    assert hardening.core_pattern_problems("|/usr/share/apport/apport -p%p") == [
        "kernel.core_pattern pipes dumps to /usr/share/apport/apport, whatever the limits"
    ]


def test_umask() -> None:
    assert hardening.umask_problems("UMASK\t\t027\n") == []
    assert hardening.umask_problems("UMASK 077 # stricter\n") == []
    assert hardening.umask_problems("UMASK 0x17\n") == []  # 0o027, as shadow reads it
    assert hardening.umask_problems("UMASK\t022\n") == [
        "/etc/login.defs: UMASK 022 (octal 022) leaves more than 027 allows"
    ]
    assert hardening.umask_problems("UMASK 27\n") == [
        "/etc/login.defs: UMASK 27 (octal 033) leaves more than 027 allows"
    ]
    assert hardening.umask_problems("#UMASK 027\n") == [
        "/etc/login.defs sets no UMASK (Debian's default is 022)"
    ]
    assert hardening.umask_problems("umask 022\nUMASK 027\n") == [
        "/etc/login.defs sets UMASK 2 times (022, 027)"
    ]


def test_modules_refused_in_either_spelling_and_overrides_named() -> None:
    role = "".join(f"install {m} /bin/false\nblacklist {m}\n" for m in hardening.DISABLED_MODULES)
    files = {"/etc/modprobe.d/educloud-hardening.conf": role}
    assert hardening.module_problems(files) == []
    spelt = {"/etc/modprobe.d/x.conf": "install usb_storage /bin/true\n"}
    assert hardening.module_problems(spelt, ["usb-storage"]) == []
    blacklisted_only = {"/etc/modprobe.d/x.conf": "blacklist dccp\n"}
    assert hardening.module_problems(blacklisted_only, ["dccp"]) == [
        "module dccp can be loaded (no install dccp /bin/false)"
    ]


def test_the_first_matching_install_line_wins_patterns_included() -> None:
    role = {"/etc/modprobe.d/educloud-hardening.conf": "install sctp /bin/false\n"}
    for earlier in ("install sctp /sbin/modprobe --ignore-install sctp", "install sct* /bin/sh x"):
        files = {**role, "/usr/local/lib/modprobe.d/00-x.conf": earlier + "\n"}
        command = earlier.split(None, 2)[2]
        assert hardening.module_problems(files, ["sctp"]) == [
            f"module sctp has another install command first: {command!r} "
            "(/usr/local/lib/modprobe.d/00-x.conf)"
        ]
    later = {
        **role,
        "/etc/modprobe.d/zz.conf": "install sctp /sbin/modprobe --ignore-install sctp\n",
    }
    assert hardening.module_problems(later, ["sctp"]) == []
    # A file of /etc masks one of the same name in /usr/lib.
    masked = {
        "/usr/lib/modprobe.d/x.conf": "install sctp /bin/sh\n",
        "/etc/modprobe.d/x.conf": "install sctp /bin/false\n",
    }
    assert hardening.module_problems(masked, ["sctp"]) == []


def test_banner() -> None:
    banner = str(_role_defaults()["hardening_banner"])
    assert hardening.banner_problems("/etc/issue", banner) == []
    assert hardening.banner_problems("/etc/issue", None) == [
        "/etc/issue is missing or empty (no legal banner)"
    ]
    assert hardening.banner_problems("/etc/issue", "Debian GNU/Linux 12 \\n \\l\n") == [
        "/etc/issue names the operating system"
    ]
    for escape in ("\\s \\r", "\\S", "\\v"):
        assert hardening.banner_problems("/etc/issue.net", banner + escape + "\n") == [
            "/etc/issue.net prints the system's name or version (getty escape)"
        ]
    assert hardening.banner_problems("/etc/issue", banner + "\\n \\l\n") == []


@pytest.mark.parametrize(
    "command",
    [hardening.DUMP_SYSCTL_FILES, hardening.DUMP_LIMITS_FILES, hardening.DUMP_MODPROBE_FILES],
)
def test_dump_command_prints_each_file_as_it_is(command: str) -> None:
    """Run by sh on this Debian machine: every file it prints is read back whole."""
    done = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr
    files = hardening.parse_dump(done.stdout)
    assert files, "this machine has none of the files (Debian ships some of each)"
    for path, text in files.items():
        assert text.strip() == Path(path).read_text(encoding="utf-8").strip(), path
