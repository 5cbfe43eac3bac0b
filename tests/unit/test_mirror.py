"""The host's Debian mirror is read from one-line and deb822 apt sources."""

from __future__ import annotations

import pytest

from educloud.errors import EducloudError
from educloud.lab.mirror import host_debian_mirror


def test_deb822_sources(tmp_path):
    (tmp_path / "debian.sources").write_text(
        "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example.fr/debian\nSuites: bookworm\n"
    )
    assert host_debian_mirror((tmp_path,)) == "http://mirror.example.fr/debian/"


def test_one_line_sources_skip_security_and_other_archives(tmp_path):
    sources = tmp_path / "sources.list"
    sources.write_text(
        "deb http://security.debian.org/debian-security bookworm-security main\n"
        "deb [arch=amd64] https://deb.nodesource.com/node_20.x nodistro main\n"
        "# deb http://commented.example/debian bookworm main\n"
        "deb [signed-by=/k.gpg] http://ftp.fr.debian.org/debian/ bookworm main\n"
    )
    assert host_debian_mirror((sources,)) == "http://ftp.fr.debian.org/debian/"


def test_no_mirror_is_a_clear_error(tmp_path):
    with pytest.raises(EducloudError, match="no Debian mirror"):
        host_debian_mirror((tmp_path,))
