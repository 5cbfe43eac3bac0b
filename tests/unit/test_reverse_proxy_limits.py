"""The report form's rate-limit key (reverse_proxy's nginx.conf.j2): one key per IPv4
address and per IPv6 /64, whichever way nginx prints the address (RFC 5952, as Python's
ipaddress does). The map is rendered from the template itself (with Ansible's filters)
and its regular expressions applied in order, the way nginx evaluates them."""

from __future__ import annotations

import functools
import ipaddress
import random
import re
from pathlib import Path

import jinja2
import pytest
from ansible.plugins.filter.core import FilterModule

TEMPLATE = Path(__file__).parents[2] / "roles/reverse_proxy/templates/nginx.conf.j2"


@functools.cache
def _rules() -> tuple[list[tuple[re.Pattern[str], str]], str]:
    text = TEMPLATE.read_text()
    source = re.search(
        r"\n    map \$remote_addr \$educloud_reporting_client \{.*?\n    \}", text, re.S
    )
    assert source, "the rate-limit map is missing from nginx.conf.j2"
    # An nginx configuration, not HTML: nothing to escape.
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)  # noqa: S701
    env.filters.update(FilterModule().filters())
    rendered = env.from_string(source.group(0)).render()
    block = re.search(r"\{(.*)\}", rendered, re.S)
    assert block, "the rate-limit map is missing from nginx.conf.j2"
    rules, default = [], ""
    for line in block.group(1).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("default "):
            default = line.removeprefix("default ").rstrip(";")
            continue
        match = re.fullmatch(r'"~(.+)" (\S+);', line)
        assert match, line
        rules.append((re.compile(match.group(1)), match.group(2)))
    return rules, default


def _key(address: str) -> str:
    rules, default = _rules()
    for pattern, value in rules:
        found = pattern.search(address)
        if found:
            return re.sub(r"\$(\d)", lambda m, f=found: f.group(int(m.group(1))), value)
    return default.replace("$remote_addr", address)


def _prefix64(address: str) -> str:
    network = ipaddress.IPv6Network(f"{address}/64", strict=False)
    return ":".join(f"{int(g, 16):x}" for g in network.network_address.exploded.split(":")[:4])


def _addresses() -> list[str]:
    rng = random.Random(29)  # noqa: S311 (test addresses, the same on every run)
    found = [
        "::",
        "::1",
        "2001:db8::",
        "2001:db8::1",
        "2001:db8:0:1::",
        "fe80::1:2:3:4",
        "::ffff:0:1",
    ]
    for _ in range(3000):
        groups = [rng.choice([0, 0, 0, rng.randrange(1, 0x10000)]) for _ in range(8)]
        found.append(str(ipaddress.IPv6Address(":".join(f"{g:x}" for g in groups))))
    return found


@pytest.mark.parametrize("chunk", range(6))
def test_every_ipv6_address_keys_on_its_64(chunk: int) -> None:
    addresses = _addresses()[chunk::6]
    wrong = [(a, _key(a), _prefix64(a)) for a in addresses if _key(a) != _prefix64(a)]
    assert not wrong, wrong[:5]


def test_two_addresses_of_one_64_share_a_key_and_ipv4_keys_on_the_address() -> None:
    assert _key("2001:db8:1:2::5") == _key("2001:db8:1:2:ffff:ee:dd:cc")
    assert _key("2001:db8:1:2::5") != _key("2001:db8:1:3::5")
    assert _key("198.18.0.1") == "198.18.0.1"
    assert _key("198.18.0.1") != _key("198.18.0.2")
