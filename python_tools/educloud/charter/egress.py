"""Is a host's outbound firewall the one policies/egress.yml describes? (C5)

Reads the JSON of `nft -j list ruleset` and answers with the problems found, so that a
unit test can feed it a broken ruleset and see it fail.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from educloud.policy import Destination

DENY_LOG_PREFIX = "educloud-egress-drop: "


def hook_chains(ruleset: dict[str, Any], hook: str) -> list[dict[str, Any]]:
    """The base chains attached to `hook` (input, output ...), from every table."""
    return [
        item["chain"]
        for item in ruleset.get("nftables", [])
        if "chain" in item and item["chain"].get("hook") == hook
    ]


def describe_chains(ruleset: dict[str, Any], hook: str) -> str:
    """One line of evidence: each chain on `hook` with its default policy."""
    return ", ".join(
        f"{c['table']}/{c['name']} politique {c.get('policy')}" for c in hook_chains(ruleset, hook)
    )


def _output_chains(ruleset: dict[str, Any]) -> list[dict[str, Any]]:
    return hook_chains(ruleset, "output")


def _rules(ruleset: dict[str, Any], chain: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        item["rule"]
        for item in ruleset.get("nftables", [])
        if "rule" in item
        and item["rule"].get("chain") == chain["name"]
        and item["rule"].get("table") == chain["table"]
        and item["rule"].get("family") == chain["family"]
    ]


def _is_unconditional_accept(rule: dict[str, Any]) -> bool:
    verbs = [next(iter(e)) for e in rule.get("expr", [])]
    return [v for v in verbs if v != "counter"] == ["accept"]


def _accepted_destinations(rules: Iterable[dict[str, Any]]) -> set[tuple[str, str, int]]:
    found = set()
    for rule in rules:
        address = protocol = port = None
        verdict = False
        for expr in rule.get("expr", []):
            match = expr.get("match")
            if match:
                payload = match.get("left", {}).get("payload", {})
                if payload.get("field") == "daddr" and isinstance(match.get("right"), str):
                    address = match["right"]
                if payload.get("field") == "dport" and isinstance(match.get("right"), int):
                    protocol, port = payload.get("protocol"), match["right"]
            if "accept" in expr:
                verdict = True
        if verdict and address and protocol and port:
            found.add((address, str(protocol), int(port)))
    return found


def ruleset_problems(ruleset: dict[str, Any], destinations: Iterable[Destination]) -> list[str]:
    """Empty when every output hook refuses by default, logs, and allows the policy's list."""
    chains = _output_chains(ruleset)
    if not chains:
        return ["no output chain: outbound traffic is not filtered"]
    problems = []
    for chain in chains:
        label = f"{chain['family']} {chain['table']} {chain['name']}"
        rules = _rules(ruleset, chain)
        if chain.get("policy") != "drop" and not any(
            "reject" in expr or "drop" in expr for rule in rules for expr in rule.get("expr", [])
        ):
            problems.append(f"{label}: policy {chain.get('policy')} and no final reject")
        if any(_is_unconditional_accept(rule) for rule in rules):
            problems.append(f"{label}: a rule accepts every destination")
    accepted: set[tuple[str, str, int]] = set()
    logged = False
    for chain in chains:
        rules = _rules(ruleset, chain)
        accepted |= _accepted_destinations(rules)
        logged = logged or any(
            expr.get("log", {}).get("prefix") == DENY_LOG_PREFIX
            for rule in rules
            for expr in rule.get("expr", [])
        )
    if not logged:
        problems.append(f"refused connections are not logged (prefix {DENY_LOG_PREFIX!r})")
    allowed = set()
    for destination in destinations:
        network = ipaddress.ip_network(destination.address, strict=False)
        address = str(network.network_address) if network.num_addresses == 1 else str(network)
        allowed.add((address, destination.protocol, destination.port))
        if (address, destination.protocol, destination.port) not in accepted:
            problems.append(
                f"policy destination {destination.name} ({destination.address} "
                f"{destination.protocol}/{destination.port}) is not allowed by the firewall"
            )
    for address, protocol, port in sorted(accepted - allowed):
        problems.append(f"the firewall allows {address} {protocol}/{port}, not in the policy")
    return problems


def inbound_problems(ruleset: dict[str, Any]) -> list[str]:
    """Empty when every input hook refuses by default (C10)."""
    chains = hook_chains(ruleset, "input")
    if not chains:
        return ["no input chain: inbound traffic is not filtered"]
    problems = []
    for chain in chains:
        label = f"{chain['family']} {chain['table']} {chain['name']}"
        if chain.get("policy") != "drop":
            problems.append(f"{label}: policy {chain.get('policy')}, not drop")
        if any(_is_unconditional_accept(rule) for rule in _rules(ruleset, chain)):
            problems.append(f"{label}: a rule accepts every packet")
    return problems


def refused_count(ruleset: dict[str, Any]) -> int:
    """Packets the output chains' reject/drop rules have refused so far (their counters)."""
    total = 0
    for chain in _output_chains(ruleset):
        for rule in _rules(ruleset, chain):
            exprs = rule.get("expr", [])
            if any("reject" in e or "drop" in e for e in exprs):
                total += sum(int(e["counter"].get("packets", 0)) for e in exprs if "counter" in e)
    return total
