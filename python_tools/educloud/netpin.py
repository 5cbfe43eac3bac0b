"""Reach a deployment by its public names before DNS knows them (the lab, a pre-production).

`pinned_names` makes this process resolve the given names to the given addresses, so
that HTTPS requests keep the real name for SNI and certificate checks. Only addresses
in loopback or the lab's range may be pinned: nothing here ever targets anything else,
unless the operator verifying a real deployment sets EDUCLOUD_ALLOW_PUBLIC_TARGETS=1
(`educloud verify --allow-public-targets`).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from educloud.errors import EducloudError

PUBLIC_TARGETS_ENV = "EDUCLOUD_ALLOW_PUBLIC_TARGETS"
ALLOWED_TARGETS = (
    ipaddress.IPv4Network("127.0.0.0/8"),
    ipaddress.IPv4Network("198.18.0.0/24"),
)


def check_target(address: str) -> str:
    """The address itself, when this process may target it (else EducloudError)."""
    parsed = ipaddress.ip_address(address)
    if os.environ.get(PUBLIC_TARGETS_ENV) == "1":
        return address
    if not any(parsed in network for network in ALLOWED_TARGETS):
        raise EducloudError(
            f"{address} is outside loopback and the lab range: refusing to target it "
            f"(a real deployment: {PUBLIC_TARGETS_ENV}=1)"
        )
    return address


@contextmanager
def pinned_names(names: Mapping[str, str]) -> Iterator[None]:
    pins = {name.lower(): check_target(address) for name, address in names.items()}
    original = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.lower() in pins:
            host = pins[host.lower()]
        return original(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = original
