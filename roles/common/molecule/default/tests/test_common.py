"""Behaviour of the common role on a converged lab host (testinfra)."""

from __future__ import annotations

import json
import re

import pytest

from educloud.hostscope import policy_values


@pytest.mark.parametrize(
    "package", ["nftables", "unattended-upgrades", "locales", "logrotate", "openssh-server"]
)
def test_base_package_installed(host, package):
    assert host.package(package).is_installed


@pytest.mark.parametrize(
    "service", ["ssh", "nftables", "apt-daily-upgrade.timer", "logrotate.timer"]
)
def test_service_enabled_and_running(host, service):
    unit = host.service(service)
    assert unit.is_enabled
    assert unit.is_running


def test_timezone_is_paris(host):
    assert host.file("/etc/localtime").linked_to == "/usr/share/zoneinfo/Europe/Paris"
    assert host.file("/etc/timezone").content_string == "Europe/Paris\n"
    # What the C library derives from those files, as every service sees it.
    assert host.check_output("date +%Z") in {"CET", "CEST"}


def test_french_locale_generated_and_default(host):
    assert "fr_FR.utf8" in host.check_output("locale -a").split()
    assert host.file("/etc/default/locale").contains("^LANG=fr_FR.UTF-8$")


def test_security_updates_install_automatically(host):
    config = host.check_output("apt-config dump APT::Periodic")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in config
    origins = host.file("/etc/apt/apt.conf.d/50unattended-upgrades").content_string
    assert "label=Debian-Security" in origins


def test_journald_retention_bounded(host):
    # systemd-analyze cat-config shows the merged configuration journald reads; the period
    # is the policy's (system_logs), as the deployment's policies say.
    expected = policy_values(host.ansible.get_variables())["common_journald_max_retention"]
    merged = host.check_output("systemd-analyze cat-config systemd/journald.conf")
    assert f"MaxRetentionSec={expected}" in merged
    assert "MaxFileSec=1day" in merged
    assert "Storage=persistent" in merged


def test_logrotate_deletes_old_logs(host):
    # The policy's period (web_logs) less the two days logrotate may take to delete a
    # rotated file.
    period = policy_values(host.ansible.get_variables())["common_logrotate_maxage_days"]
    assert host.file("/etc/logrotate.conf").contains(f"^maxage {int(period) - 2}$")
    assert host.file("/etc/logrotate.conf").contains("^daily$")


def test_package_logs_rotated_daily(host):
    rules = host.check_output("cat /etc/logrotate.d/*")
    assert not re.search(r"^\s*(weekly|monthly|yearly)\s*$", rules, re.MULTILINE)


def test_sshd_effective_config_is_hardened(host):
    effective = host.check_output("sshd -T")
    settings = dict(line.split(" ", 1) for line in effective.splitlines() if " " in line)
    assert settings["passwordauthentication"] == "no"
    assert settings["kbdinteractiveauthentication"] == "no"
    assert settings["permitrootlogin"] in {"without-password", "prohibit-password", "no"}
    assert settings["x11forwarding"] == "no"
    assert "cbc" not in settings["ciphers"]
    assert all(mac.endswith("-etm@openssh.com") for mac in settings["macs"].split(","))
    assert "diffie-hellman-group14-sha1" not in settings["kexalgorithms"]
    # Lynis SSH-7408: few sessions per connection, liveness through the channel only.
    assert int(settings["maxsessions"]) <= 2
    assert settings["tcpkeepalive"] == "no"
    assert settings["clientaliveinterval"] == "300"


def _sshd_settings_for(host, user: str) -> dict[str, str]:
    """sshd's effective settings for a connection of `user` (its Match blocks applied)."""
    effective = host.check_output(f"sshd -T -C user={user},host=client.invalid,addr=198.18.0.1")
    return dict(line.split(" ", 1) for line in effective.splitlines() if " " in line)


def test_sftp_chroot_users_get_sftp_only_and_nobody_else(host):
    root = _sshd_settings_for(host, "root")
    assert root.get("chrootdirectory", "none") == "none"
    assert root.get("forcecommand", "none") == "none"
    for chroot in host.ansible.get_variables().get("common_ssh_sftp_chroot_users", []):
        confined = _sshd_settings_for(host, chroot["user"])
        assert confined["chrootdirectory"] == chroot["directory"]
        assert confined["forcecommand"] == "internal-sftp"
        assert confined["allowtcpforwarding"] == "no"
        assert confined["x11forwarding"] == "no"
        assert confined["permittty"] == "no"


def test_ssh_config_not_world_readable(host):
    config = host.file("/etc/ssh/sshd_config")
    assert config.user == "root"
    assert config.mode & 0o077 == 0


def test_firewall_denies_inbound_by_default(host):
    ruleset = host.check_output("nft list chain inet educloud input")
    assert "policy drop" in ruleset
    assert "tcp dport 22" in ruleset


def _opened_tcp_ports(host) -> set[str]:
    """Ports the firewall opens to everyone: SSH plus the inbound_tcp set roles add to."""
    listed = json.loads(host.check_output("nft -j list set inet educloud inbound_tcp"))
    elements = next(i["set"] for i in listed["nftables"] if "set" in i).get("elem", [])
    ports = {"22"}
    for element in elements:
        if isinstance(element, dict) and "range" in element:
            low, high = element["range"]
            ports |= {str(p) for p in range(int(low), int(high) + 1)}
        else:
            ports.add(str(element))
    return ports


def _ports_of(right) -> set[str]:
    """The ports a `tcp dport` match's right-hand side names (a port, a set, a range)."""
    if isinstance(right, dict) and "set" in right:
        return set().union(*(_ports_of(item) for item in right["set"]))
    if isinstance(right, dict) and "range" in right:
        low, high = right["range"]
        return {str(port) for port in range(int(low), int(high) + 1)}
    return {str(right)} if isinstance(right, int) else set()


def _peer_tcp_ports(host) -> set[str]:
    """Ports the roles open to given addresses only (their peers and declared clients): the
    rules of the chain roles_input, each with its `saddr`."""
    listed = json.loads(host.check_output("nft -j list chain inet educloud roles_input"))
    ports: set[str] = set()
    for item in listed["nftables"]:
        for expression in item.get("rule", {}).get("expr", []):
            match = expression.get("match", {})
            if match.get("left", {}).get("payload", {}).get("field") == "dport":
                ports |= _ports_of(match.get("right"))
    return ports


def test_nothing_listens_publicly_that_the_firewall_does_not_open(host):
    """Every TCP listener outside loopback is opened by the firewall: to everyone (SSH and
    the inbound_tcp set) or, by a role, to its peers and declared clients only."""
    public = {
        s.rsplit(":", 1)[1]
        for s in host.socket.get_listening_sockets()
        if s.startswith("tcp://") and not s.startswith(("tcp://127.", "tcp://::1"))
    }
    assert public <= _opened_tcp_ports(host) | _peer_tcp_ports(host)


# --- Mail to the operators (C10: failures are seen) ---------------------------------------


def test_a_failure_mail_reaches_the_relay(host):
    """The failure mail of a unit (here a probe's name) goes through msmtp to the relay,
    which accepts it for the operators (msmtp's own log line, in the journal)."""
    variables = host.ansible.get_variables()
    operators = variables.get("common_mail_operators") or []
    if not operators:
        pytest.skip("no common_mail_operators: this host has no mail transport")
    assert host.package("msmtp-mta").is_installed
    assert not host.service("msmtpd").is_running
    since = host.check_output("date +%s")
    result = host.run("systemctl start educloud-failure-mail@educloud-mail-probe.service")
    log = host.run(f"journalctl --no-pager -o cat -t msmtp --since @{since}").stdout
    assert result.rc == 0, log
    assert "exitcode=EX_OK" in log, log
    assert f"recipients={','.join(operators)}" in log, log


def test_root_and_unattended_upgrades_errors_go_to_the_operators(host):
    """ANSSI R75: root's mail is the operators', and a failed unattended upgrade mails root."""
    variables = host.ansible.get_variables()
    operators = variables.get("common_mail_operators") or []
    if not operators:
        pytest.skip("no common_mail_operators: this host has no mail transport")
    aliases = host.file("/etc/aliases").content_string.splitlines()
    assert f"root: {', '.join(operators)}" in aliases
    settings = host.check_output("apt-config dump Unattended-Upgrade").splitlines()
    assert 'Unattended-Upgrade::Mail "root";' in settings
    assert 'Unattended-Upgrade::MailReport "only-on-error";' in settings
