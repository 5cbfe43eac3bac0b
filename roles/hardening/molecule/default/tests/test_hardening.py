"""Host checks of roles/hardening: what the role wrote is in force on the host (ANSSI BP-028).

The charter check (tests/charter/test_host_hardening.py) compares the hosts with ANSSI's
values; these read the role's own files and effects, on a host of the lab or molecule's.
"""

from __future__ import annotations

import email
import email.policy
import time
from typing import Any

import pytest

from educloud.lab.settings import LabPaths

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


# --- Accounts, sessions, compilers (Lynis AUTH-9286, AUTH-9262, DEB-0280, SHLL-6220,
# KRNL-5820, HRDN-7222) -----------------------------------------------------------------


def _login_defs(host: Any) -> dict[str, str]:
    values = {}
    for line in host.file("/etc/login.defs").content_string.splitlines():
        words = line.split()
        if len(words) == 2 and not words[0].startswith("#"):
            values[words[0]] = words[1]
    return values


def test_password_ageing_for_new_accounts(host: Any) -> None:
    values = _login_defs(host)
    assert 0 < int(values["PASS_MAX_DAYS"]) <= 365
    assert int(values["PASS_MIN_DAYS"]) >= 1


def test_pam_checks_password_quality_and_gives_private_temporary_folders(host: Any) -> None:
    common_password = host.file("/etc/pam.d/common-password").content_string
    common_session = host.file("/etc/pam.d/common-session").content_string
    assert "pam_pwquality.so" in common_password
    assert "pam_tmpdir.so" in common_session


def test_login_shell_times_out_and_dumps_no_core(host: Any) -> None:
    """A login shell of root gets a read-only TMOUT and a core limit of 0."""
    output = host.check_output("bash -lc 'readonly -p; echo core=$(ulimit -c)'")
    timeouts = [line for line in output.splitlines() if line.startswith("declare -rx TMOUT=")]
    assert timeouts, output
    assert 0 < int(timeouts[0].split("=", 1)[1].strip('"')) <= 900
    assert "core=0" in output


def test_compilers_run_for_root_only(host: Any) -> None:
    target = host.check_output("readlink -f /usr/bin/as")
    assert host.file(target).mode & 0o007 == 0
    # dpkg-statoverride --list prints the mode without its leading 0.
    assert f"root root 750 {target}" in host.check_output("dpkg-statoverride --list").splitlines()
    # An unprivileged account cannot run it.
    assert host.run(f"runuser -u nobody -- {target} --version").rc != 0


# --- File integrity (ANSSI R76; Lynis FINT-4350, FINT-4402, PKGS-7370, HRDN-7230) -----------


def _integrity_check(host: Any) -> Any:
    return host.run("systemctl start educloud-integrity.service")


def _integrity_log(host: Any) -> str:
    """The journal of the integrity check's last run only."""
    return str(
        host.run(
            "journalctl --no-pager -o cat"
            " _SYSTEMD_INVOCATION_ID=$(systemctl show -P InvocationID educloud-integrity.service)"
        ).stdout
    )


@pytest.fixture
def sealed_host_alone(host: Any) -> None:
    """The integrity checks run on molecule's host, where nothing else runs: on the lab's
    hosts the other roles' checks run beside them (two workers) and change files AIDE
    watches, so a pass or a failure there would say nothing."""
    name = str(host.ansible.get_variables().get("inventory_hostname", ""))
    if not name.startswith("mol-"):
        pytest.skip(f"{name}: integrity checks run on the molecule host only")


def _reseal(host: Any) -> None:
    """After a change was undone, seal again (the undo changed ctimes and the folder)."""
    host.check_output(
        "aide --config /etc/aide/aide.conf --init > /dev/null"
        " && mv /var/lib/aide/aide.db.new /var/lib/aide/aide.db"
    )


def test_integrity_check_is_daily_and_passes_on_the_deployed_host(
    host: Any, sealed_host_alone: None
) -> None:
    assert host.service("educloud-integrity.timer").is_enabled
    assert host.check_output("grep -E '^Checksums = (sha512|sha256)' /etc/aide/aide.conf")
    assert host.file("/var/lib/aide/aide.db").mode == 0o600
    result = _integrity_check(host)
    assert result.rc == 0, _integrity_log(host)


@pytest.mark.parametrize(
    ("change", "undo"),
    [
        # A file appears where a deploy put none.
        ("install -m 0644 /dev/null /etc/educloud-probe", "rm -f /etc/educloud-probe"),
        # A watched file's mode changes.
        ("chmod 0640 /etc/issue.net", "chmod 0644 /etc/issue.net"),
    ],
    ids=["file-added", "mode-changed"],
)
def test_integrity_check_fails_on_a_change_made_after_the_deploy(
    host: Any, sealed_host_alone: None, change: str, undo: str
) -> None:
    since = host.check_output("date +%s")
    host.check_output(change)
    try:
        result = _integrity_check(host)
        log = _integrity_log(host)
        # Before the failed state is reset: the mail reports it.
        mails = _failure_mails(host, since)
    finally:
        host.check_output(undo)
        host.run("systemctl reset-failed educloud-integrity.service")
        _reseal(host)
    assert result.rc != 0, "the integrity check passed over a change: " + log
    # AIDE's report names what changed (AIDE 0.18: "Added entries:", "Changed entries:").
    assert "Added entries:" in log or "Changed entries:" in log, log
    assert mails, "no failure mail within 90 s"
    body = mails[0].get_content()
    assert "Le service educloud-integrity.service a échoué" in body
    assert "ActiveState failed, Result exit-code" in body, body
    assert "Added entries:" in body or "Changed entries:" in body, body


def _failure_mails(host: Any, since: str) -> list[Any]:
    """The mails the failed check's OnFailure unit (the common role's failure mail) sent
    the operators since SINCE, as the relay got them (the lab's SMTP sink files each one
    under its maildir), naming the unit and the host; waits up to 90 s for one."""
    name = host.check_output("hostname")
    deadline, found = time.monotonic() + 90, []
    while time.monotonic() < deadline and not found:
        time.sleep(2)
        found = [
            message
            for path in (LabPaths.default().mail / "new").glob("*")
            if path.stat().st_mtime >= int(since)
            for message in [
                email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            ]
            if message["X-Educloud-Unit"] == "educloud-integrity.service"
            and f"sur {name} :" in str(message["Subject"])
        ]
    return found


FAIL2BAN_TEST_FILE = (
    "/usr/lib/python3/dist-packages/fail2ban/tests/files/config/apache-auth/basic/.htpasswd"
)


@pytest.mark.parametrize(
    ("reported", "found"),
    [
        ("/usr/lib/.evil/.hidden", True),
        # A known false positive of hardening_chkrootkit_ignored.
        (FAIL2BAN_TEST_FILE, False),
    ],
    ids=["suspicious-file", "known-false-positive"],
)
def test_integrity_check_reports_what_chkrootkit_finds(
    host: Any, sealed_host_alone: None, reported: str, found: bool
) -> None:
    """The chkrootkit step, fed a report (CHKROOTKIT: a stand-in printing it), fails on a
    finding and leaves out only the known false positives."""
    fake = "/root/.educloud-fake-chkrootkit"
    script = (
        "#!/bin/sh\n"
        "echo 'WARNING: The following suspicious files and directories were found:'\n"
        f"echo '{reported}'\n"
    )
    host.check_output(f"cat > {fake} <<'EOF'\n{script}EOF\nchmod 0700 {fake}")
    try:
        result = host.run(f"CHKROOTKIT={fake} /usr/local/sbin/educloud-integrity-check")
    finally:
        host.check_output(f"rm -f {fake}")
    chkrootkit_part = result.stdout.split("== chkrootkit", 1)[1]
    assert ("chkrootkit found:" in chkrootkit_part) is found, result.stdout
    if found:
        assert reported in chkrootkit_part
        assert result.rc == 1, result.stdout
    else:
        assert result.rc == 0, result.stdout


def test_integrity_check_fails_on_a_package_file_changed(host: Any) -> None:
    """debsums: a file of a Debian package that differs from dpkg's checksum."""
    target = "/usr/share/doc/debsums/copyright"
    host.check_output(f"cp -a {target} /root/.integrity-probe && echo x >> {target}")
    try:
        result = host.run("debsums --silent debsums")
    finally:
        host.check_output(f"cp -a /root/.integrity-probe {target} && rm /root/.integrity-probe")
    assert result.rc != 0
    assert target in result.stdout + result.stderr


# --- fail2ban (ANSSI R79; Lynis TOOL-5190, DEB-0880) ------------------------------------


@pytest.mark.parametrize(
    ("line", "counted"),
    [
        ("sshd[4242]: Invalid user bob from 192.0.2.5 port 50000", True),
        # A backup client whose key was rotated: never banned for that (mode normal).
        (
            "sshd[4242]: Connection closed by authenticating user backup-edu1 192.0.2.6"
            " port 50000 [preauth]",
            False,
        ),
    ],
    ids=["invalid-user", "known-user-wrong-key"],
)
def test_fail2ban_counts_guessing_not_a_known_accounts_wrong_key(
    host: Any, line: str, counted: bool
) -> None:
    """The sshd jail's filter as configured (jail.local's mode) against sshd's lines."""
    result = host.run(
        "fail2ban-regex --print-no-missed "
        f"'Dec  7 10:00:00 srv {line}' /etc/fail2ban/filter.d/sshd.conf[mode=normal]"
    )
    assert result.rc == 0, result.stderr
    matched = [row for row in result.stdout.splitlines() if row.strip().startswith("Lines:")]
    assert matched, result.stdout
    assert (" 1 matched" in matched[0]) is counted, matched[0]


def test_fail2ban_bans_in_the_firewall_and_never_the_administrators(host: Any) -> None:
    assert host.service("fail2ban").is_running
    jail = host.file("/etc/fail2ban/jail.local").content_string
    ignored = next(line for line in jail.splitlines() if line.startswith("ignoreip"))
    for network in host.ansible.get_variables().get("educloud_admin_networks", []):
        assert f" {network}" in ignored
    probe = "192.0.2.77"  # TEST-NET-1: never a real client
    host.check_output(f"fail2ban-client set sshd banip {probe}")
    try:
        banned = host.check_output("nft -j list set inet educloud banned_v4")
        # Loading the firewall again empties its sets: fail2ban is restarted and bans again.
        host.check_output("systemctl reload nftables")
        restored = host.run(
            f"for i in $(seq 30); do nft list set inet educloud banned_v4 | grep -q {probe}"
            " && exit 0; sleep 1; done; exit 1"
        )
    finally:
        host.run(f"fail2ban-client set sshd unbanip {probe}")
    assert probe in banned
    assert restored.rc == 0, "the ban was not restored after the firewall was reloaded"
    assert probe not in host.check_output("nft -j list set inet educloud banned_v4")
