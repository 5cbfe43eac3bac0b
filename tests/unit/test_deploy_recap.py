"""The playbook recap is read back as data (idempotence checks rely on it)."""

from __future__ import annotations

from educloud.deploy import parse_notices, parse_recap

OUTPUT = """
TASK [common : Install base packages] ****
ok: [edu1]

PLAY RECAP *********************************************************************
edu1                       : ok=28   changed=17   unreachable=0    failed=0    skipped=0
kc2                        : ok=3    changed=0    unreachable=1    failed=2    skipped=0
"""


def test_parse_recap_reads_every_host():
    recap = parse_recap(OUTPUT)
    assert recap["edu1"].changed == 17
    assert recap["kc2"].unreachable == 1
    assert recap["kc2"].failed == 2


def test_lines_before_the_recap_are_ignored():
    assert parse_recap("edu1 : ok=1 changed=1 unreachable=0 failed=0") == {}


WRAPPED_NOTICE = """TASK [nextcloud : Say why Nextcloud stops before its install step] *************
ok: [edu1] =>
    msg: 'Nextcloud not installed: no release archive given (nextcloud_archive_url or
        EDUCLOUD_NEXTCLOUD_ARCHIVE, with its SHA-256); everything up to the install step
        is ready.'

TASK [nextcloud : Stop the role here until a release archive is given] *********
"""


def test_a_wrapped_notice_is_read_as_one_line():
    assert parse_notices(WRAPPED_NOTICE + WRAPPED_NOTICE) == [
        "Nextcloud not installed: no release archive given (nextcloud_archive_url or "
        "EDUCLOUD_NEXTCLOUD_ARCHIVE, with its SHA-256); everything up to the install step "
        "is ready."
    ]
    assert parse_notices(OUTPUT) == []
