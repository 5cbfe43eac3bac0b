"""Who an admin site answers (C10): nginx's access rules on the sites that the inventory
keeps to the administrators' networks (`allow_networks`), read from `nginx -T`.

What lets anyone else in, each found here:
- an `allow` wider than the administrators' networks and the loopback (`allow all`,
  a whole subnet), or an access list that does not end with `deny all`;
- a location (or `if`) with access rules of its own: nginx then applies those instead of
  the server's, not on top of them (ngx_http_access_module merges a level's rules only
  when it has none), so each level is judged with the rules nginx applies there;
- `satisfy any`, which lets a request through when any other module allows it;
- `set_real_ip_from` a non-loopback source: the client's address becomes a header's
  value (`real_ip_header`), which whoever sends the request chooses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Sequence

from educloud.charter.headers import Directive, load_dump

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
_ACCESS = frozenset({"allow", "deny"})


def _within(value: str, allowed: Sequence[Network]) -> bool:
    if value.startswith("unix:"):
        return True  # a local socket's clients are this host's own processes
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False  # "all", or anything nginx reads as wider than a network
    return any(
        network.version == a.version and network.subnet_of(a)  # type: ignore[arg-type]
        for a in allowed
    )


def _rules(block: Iterable[Directive]) -> tuple[Directive, ...]:
    return tuple(d for d in block if d.name in _ACCESS)


def _rules_problems(
    where: str, rules: Sequence[Directive], allowed: Sequence[Network]
) -> list[str]:
    if not rules:
        return [f"{where}: no access rule (every address is answered)"]
    problems = [
        f"{where}: allow {' '.join(r.args)} ({r.file}:{r.line}) is wider than the "
        "administrators' networks"
        for r in rules
        if r.name == "allow" and not (r.args and _within(r.args[0], allowed))
    ]
    last = rules[-1]
    if not (last.name == "deny" and last.args[:1] == ("all",)):
        problems.append(f"{where}: the access rules do not end with 'deny all'")
    return problems


def _levels(
    block: tuple[Directive, ...], inherited: tuple[Directive, ...], path: str
) -> Iterator[tuple[str, tuple[Directive, ...], tuple[Directive, ...]]]:
    """(label, the level's directives, the access rules nginx applies there) for each
    location and if inside `block`, at any depth."""
    for directive in block:
        if directive.block is None or directive.name not in {"location", "if"}:
            continue
        label = f"{path} > {directive.name} {' '.join(directive.args)}".strip()
        rules = _rules(directive.block) or inherited
        yield label, directive.block, rules
        yield from _levels(directive.block, rules, label)


def _inherited_problems(where: str, block: Iterable[Directive]) -> list[str]:
    """Settings every level below inherits: real-IP sources and `satisfy any`."""
    problems = []
    for d in block:
        if d.name == "set_real_ip_from" and not (d.args and _within(d.args[0], LOOPBACK)):
            problems.append(
                f"{where}: set_real_ip_from {' '.join(d.args)} ({d.file}:{d.line}) lets a "
                "request header choose the client's address"
            )
        elif d.name == "satisfy" and d.args[:1] == ("any",):
            problems.append(
                f"{where}: satisfy any ({d.file}:{d.line}) lets another module admit a "
                "request the access rules refuse"
            )
    return problems


def admin_site_problems(dump: str, site: str, admin_networks: Iterable[str]) -> list[str]:
    """Why the server blocks of `site` in an `nginx -T` output may pass a client outside
    `admin_networks` and the loopback to an upstream (each level with a *_pass directive is
    judged with the access rules nginx applies there); [] when none would. A site with no
    such level is a problem too: nothing was judged."""
    allowed = [*LOOPBACK, *(ipaddress.ip_network(n, strict=False) for n in admin_networks)]
    problems: list[str] = []
    judged = 0
    for http in (d for d in load_dump(dump) if d.name == "http" and d.block is not None):
        assert http.block is not None
        problems += _inherited_problems("http", http.block)
        http_rules = _rules(http.block)
        for server in (d for d in http.block if d.name == "server" and d.block is not None):
            assert server.block is not None
            names = {n for d in server.block if d.name == "server_name" for n in d.args}
            if site not in names:
                continue
            where = f"server {site} ({server.file}:{server.line})"
            levels = [(where, server.block, _rules(server.block) or http_rules)]
            levels += [
                (f"{where} {label}", body, rules)
                for label, body, rules in _levels(server.block, levels[0][2], "")
            ]
            for label, body, rules in levels:
                # Inherited by every location below: judged wherever they are written.
                problems += _inherited_problems(label, body)
                if not any(d.name.endswith("_pass") for d in body):
                    continue  # no upstream here: a redirect, an ACME challenge, a file
                judged += 1
                problems += _rules_problems(label, rules, allowed)
    if not judged:
        problems.append(f"no place of nginx -T passes {site} to an upstream (nothing judged)")
    return problems
