"""The servers run free software only (C13)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from educloud.charter import hostconfig


@pytest.mark.charter("C13")
def test_apt_sources_main_only(
    host_name: str, connect: Callable[[str], Any], evidence: Callable[[str], None]
) -> None:
    target = connect(host_name)
    files = target.check_output(
        "ls /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources"
        " 2>/dev/null || true"
    ).split()
    sources = {name: target.file(name).content_string for name in files}
    evidence(f"{host_name} : sources apt {', '.join(sources) or 'aucune'}")
    problems = hostconfig.apt_component_problems(sources)
    assert not problems, "; ".join(problems)


@pytest.mark.charter("C13")
def test_no_non_free_package_installed(
    host_name: str, connect: Callable[[str], Any], evidence: Callable[[str], None]
) -> None:
    lines = connect(host_name).check_output(r"dpkg-query -W -f '${Package} ${Section}\n'")
    found = hostconfig.non_free_packages(lines.splitlines())
    evidence(f"{host_name} : {len(lines.splitlines())} paquets, non libres : {found or 'aucun'}")
    assert not found, f"non-free packages: {found}"
