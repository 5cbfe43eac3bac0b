"""The failure mail's tool (roles/common/files/educloud_failure_mail.py) on this machine: the
mail it builds for a failed unit, and what it does when the transport refuses it. The lab
test (tests/integration/test_failure_mail_lab.py) sends one through msmtp to the lab's sink.
"""

from __future__ import annotations

import email
import email.policy
import subprocess
import sys
from pathlib import Path

import pytest

from educloud import hostscripts

tool = hostscripts.load("common", "educloud_failure_mail")
SCRIPT = hostscripts.path("common", "educloud_failure_mail")
UNIT = "educloud-integrity.service"
FACTS = {
    "Description": "Check the integrity of this server's files",
    "ActiveState": "failed",
    "Result": "exit-code",
    "ExecMainStatus": "1",
}


def test_the_mail_names_the_unit_the_host_and_what_the_journal_says() -> None:
    message = tool.failure_message(
        UNIT, "edu1", "serveurs@educloud.test", FACTS, "AIDE found:\nAdded entries: /etc/x\n"
    )
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert str(parsed["Subject"]) == (
        "[educloud] Échec sur edu1 : Check the integrity of this server's files"
    )
    # RFC 2047 and quoted-printable: the mail travels as 7-bit ASCII through any relay.
    assert message.as_bytes().decode("ascii")
    assert parsed["To"] == "root"
    assert parsed["From"] == "serveurs@educloud.test"
    assert parsed["Auto-Submitted"] == "auto-generated"
    body = parsed.get_content()
    assert "Le service educloud-integrity.service a échoué sur edu1." in body
    assert "failed, Result exit-code, ExecMainStatus 1" in body
    assert "Added entries: /etc/x" in body
    assert "systemctl start educloud-integrity.service" in body


def _run(tmp_path: Path, sendmail: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The script itself, with SENDMAIL replaced by a stand-in."""
    fake = tmp_path / "sendmail"
    fake.write_text(sendmail, encoding="utf-8")
    fake.chmod(0o755)
    code = (
        "import runpy, sys; "
        f"module = runpy.run_path({str(SCRIPT)!r}, run_name='failure_mail'); "
        f"module['main'].__globals__['SENDMAIL'] = {str(fake)!r}; "
        f"sys.exit(module['main']({list(args)!r}))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env={"EDUCLOUD_FAILURE_MAIL_FROM": "serveurs@educloud.test", "PATH": "/usr/bin:/bin"},
    )


def test_the_mail_is_handed_to_sendmail_with_its_recipients_from_the_headers(
    tmp_path: Path,
) -> None:
    received = tmp_path / "received"
    result = _run(tmp_path, f'#!/bin/sh\necho "$@" > {received}.argv\ncat > {received}\n', UNIT)
    assert result.returncode == 0, result.stderr
    assert received.with_suffix(".argv").read_text().split() == ["-t", "-i"]
    parsed = email.message_from_bytes(received.read_bytes(), policy=email.policy.default)
    assert parsed["To"] == "root"
    assert "[educloud] Échec sur" in str(parsed["Subject"])


def test_a_transport_that_refuses_the_mail_fails_the_unit(tmp_path: Path) -> None:
    result = _run(tmp_path, "#!/bin/sh\ncat > /dev/null\necho 'relay refused' >&2\nexit 75\n", UNIT)
    assert result.returncode == 1
    assert "mail not sent" in result.stderr and "relay refused" in result.stderr


@pytest.mark.parametrize("unit", ["not a unit", "../etc/passwd", "x.service; reboot"])
def test_what_is_no_unit_name_is_refused(tmp_path: Path, unit: str) -> None:
    result = _run(tmp_path, "#!/bin/sh\nexit 0\n", unit)
    assert result.returncode == 2
    assert "not a unit name" in result.stderr


def test_print_sends_nothing(tmp_path: Path) -> None:
    called = tmp_path / "called"
    result = _run(tmp_path, f"#!/bin/sh\ntouch {called}\n", "--print", UNIT)
    assert result.returncode == 0
    assert "Subject: [educloud]" in result.stdout or "Subject: =?utf-8?" in result.stdout
    assert not called.exists()


def test_a_name_without_a_type_is_a_service(tmp_path: Path) -> None:
    result = _run(tmp_path, "#!/bin/sh\nexit 0\n", "--print", "educloud-mail-probe")
    assert result.returncode == 0, result.stderr
    assert "X-Educloud-Unit: educloud-mail-probe.service" in result.stdout
