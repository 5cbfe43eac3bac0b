"""Host checks of roles/hardening: what the role wrote is in force on the host (ANSSI BP-028).

The charter check (tests/charter/test_host_hardening.py) compares the hosts with ANSSI's
values; these read the role's own files and effects, on a host of the lab or molecule's.
"""

from __future__ import annotations

from typing import Any

import pytest

NETWORK = {
    "net.ipv4.conf.all.accept_redirects": "0",
    "net.ipv4.conf.all.send_redirects": "0",
    "net.ipv4.conf.all.rp_filter": "1",
    "net.ipv4.tcp_syncookies": "1",
    "net.ipv4.ip_local_port_range": "32768 65535",
}


def _in_container(host: Any) -> bool:
    return bool(host.run("systemd-detect-virt --container").rc == 0)


@pytest.mark.parametrize(("key", "value"), sorted(NETWORK.items()))
def test_network_setting_is_live(host: Any, key: str, value: str) -> None:
    live = host.check_output(f"sysctl -n {key}")
    assert " ".join(live.split()) == value


def test_every_interface_holds_the_settings_itself(host: Any) -> None:
    """The kernel ORs an IPv4 interface's redirects setting with all's, and IPv6 reads the
    interface's own: each interface is set, not only `all` and `default`."""
    interfaces = host.check_output("ls /proc/sys/net/ipv4/conf").split()
    assert {"all", "default", "lo"} < set(interfaces)
    for interface in set(interfaces) - {"all", "default"}:
        redirects = host.check_output(f"sysctl -n net.ipv4.conf.{interface}.accept_redirects")
        assert redirects == "0", interface
        if host.file(f"/proc/sys/net/ipv6/conf/{interface}").exists:
            assert host.check_output(f"sysctl -n net.ipv6.conf.{interface}.accept_ra") == "0"


def test_network_settings_come_back_at_boot(host: Any) -> None:
    """Written in sysctl.d; in a container, applied at boot by the role's own unit, since
    systemd-sysctl does not start where /proc/sys is read-only."""
    settings = host.file("/etc/sysctl.d/99-zz-educloud-network.conf")
    assert settings.exists and settings.user == "root" and settings.mode == 0o644
    assert "net.ipv4.conf.all.accept_redirects = 0" in settings.content_string
    if _in_container(host):
        unit = host.service("educloud-network-sysctl")
        assert unit.is_enabled


def test_kernel_settings_only_with_its_own_kernel(host: Any) -> None:
    kernel = host.file("/etc/sysctl.d/99-zz-educloud-kernel.conf")
    if _in_container(host):
        assert not kernel.exists, "a container cannot set the kernel of the machine running it"
    else:
        assert host.check_output("sysctl -n kernel.kptr_restrict") == "2"
        assert host.check_output("sysctl -n fs.suid_dumpable") == "0"


@pytest.mark.parametrize("account", ["root", "nobody"])
def test_no_core_dumps_for_logins(host: Any, account: str) -> None:
    # A new PAM session (runuser's stack has pam_limits, as sshd's has): this test's own SSH
    # connection may predate the role's limits.
    assert host.check_output(f"runuser -u {account} -- sh -c 'ulimit -Hc'") == "0"


def test_no_core_dumps_for_services(host: Any) -> None:
    default = host.check_output("systemctl show --property DefaultLimitCORE --value")
    assert default == "0"


def test_login_defs_umask_and_rounds(host: Any) -> None:
    settings = {
        line.split()[0]: line.split()[1]
        for line in host.file("/etc/login.defs").content_string.splitlines()
        if line.strip() and not line.lstrip().startswith("#") and len(line.split()) >= 2
    }
    assert settings["UMASK"] == "027"
    assert settings["SHA_CRYPT_MIN_ROUNDS"] == settings["SHA_CRYPT_MAX_ROUNDS"] == "65536"


@pytest.mark.parametrize("module", ["dccp", "sctp", "rds", "tipc", "usb-storage", "firewire-core"])
def test_module_never_loaded(host: Any, module: str) -> None:
    text = host.file("/etc/modprobe.d/educloud-hardening.conf").content_string
    assert f"install {module} /bin/false" in text.splitlines()


@pytest.mark.parametrize("path", ["/etc/issue", "/etc/issue.net"])
def test_banner_in_french_names_no_system(host: Any, path: str) -> None:
    text = host.file(path).content_string
    assert "personnes autorisées" in text
    assert "Debian" not in text and "\\" not in text
