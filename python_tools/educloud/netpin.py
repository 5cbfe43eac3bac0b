"""Reach a deployment by its public names before DNS knows them (the lab, a pre-production).

`pinned_names` makes this process resolve the given names to the given addresses, so
that HTTPS requests keep the real name for SNI and certificate checks. Only addresses
in loopback or the lab's range may be pinned: nothing here ever targets anything else.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from educloud.errors import EducloudError

ALLOWED_TARGETS = (
    ipaddress.IPv4Network("127.0.0.0/8"),
    ipaddress.IPv4Network("198.18.0.0/24"),
)


def _check_target(address: str) -> str:
    parsed = ipaddress.IPv4Address(address)
    if not any(parsed in network for network in ALLOWED_TARGETS):
        raise EducloudError(
            f"{address} is outside loopback and the lab range: refusing to pin a name to it"
        )
    return address


@contextmanager
def pinned_names(names: Mapping[str, str]) -> Iterator[None]:
    pins = {name.lower(): _check_target(address) for name, address in names.items()}
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
