"""The outbound allow-list check (C5) on the lab's real ruleset and on broken copies of it.

tests/unit/data/nft-lab-edu1.json is `nft -j list ruleset` of a deployed lab host (the
common role's ruleset; edu1 uses no peer's service, its backups go to a destination of
egress.yml). tests/unit/data/nft-example-lb1.json is the common role's ruleset rendered for
lb1 of inventories/example-regional (per-service peer rules, VRRP) and loaded by nft. Each
broken copy adds what an operator, a package or an attacker could add (the same forms as
tests/lab/breaks/egress.yml): every one must be named.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from educloud.charter import egress, nftables
from educloud.policy import Destination

LAB = json.loads((Path(__file__).parent / "data" / "nft-lab-edu1.json").read_text())
POLICY = (
    Destination("apt-proxy", "package_mirror", "m", "198.18.0.1", 3142, "tcp", "FR"),
    Destination("artifacts", "artifact_source", "a", "198.18.0.1", 8088, "tcp", "FR"),
    Destination("mail-relay", "mail_relay", "r", "198.18.0.1", 2525, "tcp", "FR"),
    Destination("backup-target", "backup_target", "b", "198.18.0.12", 22, "tcp", "FR"),
)
ALLOWANCE = egress.Allowance.build(
    POLICY, ["198.18.0.11", "198.18.0.12"], 22, ["127.0.0.1/32", "198.18.0.1/32"]
)


def _match(left: dict[str, Any], right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


DADDR = {"payload": {"protocol": "ip", "field": "daddr"}}
TCP_DPORT = {"payload": {"protocol": "tcp", "field": "dport"}}
ACCEPT: dict[str, Any] = {"accept": None}


def _with(*items: dict[str, Any], chain: str = "output", first: bool = True) -> dict[str, Any]:
    """The lab's ruleset with `items` added: rules go first (or last) in `chain` of the
    educloud table; other objects (chains, sets, tables) are appended."""
    ruleset = copy.deepcopy(LAB)
    entries = ruleset["nftables"]
    for item in items:
        if "rule" in item:
            rule = {"family": "inet", "table": "educloud", "chain": chain, "handle": 900}
            rule.update(item["rule"])
            same = [
                i
                for i, e in enumerate(entries)
                if "rule" in e
                and e["rule"]["chain"] == rule["chain"]
                and e["rule"]["table"] == rule["table"]
            ]
            at = (same[0] if first else same[-1] + 1) if same else len(entries)
            entries.insert(at, {"rule": rule})
        else:
            entries.append(item)
    return ruleset


def _rule(*expr: dict[str, Any], **where: Any) -> dict[str, Any]:
    return {"rule": {"expr": list(expr), **where}}


def test_the_deployed_ruleset_passes() -> None:
    assert egress.ruleset_problems(LAB, ALLOWANCE) == []
    analysis = nftables.analyse(LAB)
    assert analysis.gated_families == {"ip", "ip6"}
    assert not analysis.open_chains and not analysis.leaks


@pytest.mark.parametrize(
    ("broken", "named"),
    [
        # An unconditional accept.
        (_with(_rule(ACCEPT)), "accepts every destination"),
        # Every port of a listed address (only 3142, 8088 and 2525 are listed).
        (_with(_rule(_match(DADDR, "198.18.0.1"), ACCEPT)), "198.18.0.1/32 (every port)"),
        # A listed port at an unlisted address.
        (
            _with(_rule(_match(DADDR, "198.18.0.254"), _match(TCP_DPORT, 3142), ACCEPT)),
            "198.18.0.254/32 tcp/3142",
        ),
        # An account that may go anywhere.
        (
            _with(_rule(_match({"meta": {"key": "skuid"}}, 33), ACCEPT)),
            "accepts every destination",
        ),
        # New connections by state.
        (
            _with(_rule(_match({"ct": {"key": "state"}}, ["new"], "in"), ACCEPT)),
            "accepts every destination (ct state new)",
        ),
        # A negation reads as everything.
        (_with(_rule(_match(DADDR, "192.0.2.1", "!="), ACCEPT)), "accepts every destination"),
        # The SSH answers to every address.
        (
            _with(_rule(_match({"payload": {"protocol": "tcp", "field": "sport"}}, 22), ACCEPT)),
            "source port 22",
        ),
        # Any transport header to a listed port: UDP too.
        (
            _with(
                _rule(
                    _match(DADDR, "198.18.0.1"),
                    _match({"payload": {"protocol": "th", "field": "dport"}}, 3142),
                    ACCEPT,
                )
            ),
            "198.18.0.1/32 udp/3142",
        ),
    ],
    ids=[
        "accept-all",
        "every-port",
        "wrong-address",
        "account",
        "ct-new",
        "negation",
        "ssh-sport",
        "any-transport",
    ],
)
def test_broader_rules_are_named(broken: dict[str, Any], named: str) -> None:
    problems = egress.ruleset_problems(broken, ALLOWANCE)
    assert any(named in p for p in problems), problems


def test_a_rule_after_the_final_reject_is_never_reached() -> None:
    # nft appends a drop-in's "add rule" after the reject: it lets nothing out.
    unreachable = _with(_rule(_match(DADDR, "198.18.0.254"), ACCEPT), first=False)
    assert egress.ruleset_problems(unreachable, ALLOWANCE) == []


PEERS_SET = {
    "set": {
        "family": "inet",
        "table": "educloud",
        "name": "egress_peers_v4",
        "type": "ipv4_addr",
        "flags": ["interval"],
        "elem": ["198.18.0.12"],
    }
}
# The rule the common role wrote before issue #29: every port of every host of the deployment.
PEERS_EVERY_PORT = _with(PEERS_SET, _rule(_match(DADDR, "@egress_peers_v4"), ACCEPT))


def test_set_elements_are_read() -> None:
    broken = copy.deepcopy(PEERS_EVERY_PORT)
    for entry in broken["nftables"]:
        if entry.get("set", {}).get("name") == "egress_peers_v4":
            entry["set"]["elem"].append({"prefix": {"addr": "198.18.0.128", "len": 25}})
    problems = egress.ruleset_problems(broken, ALLOWANCE)
    assert any("198.18.0.128/25 (every port)" in p for p in problems), problems


def test_a_peer_on_every_port_is_named() -> None:
    # C5 names it with the rest of the allow-list; C10 (peer_problems) names only it.
    for check in (egress.ruleset_problems, egress.peer_problems):
        problems = check(PEERS_EVERY_PORT, ALLOWANCE)
        assert any("198.18.0.12/32 (peer reachable on every port)" in p for p in problems), (
            check,
            problems,
        )
    # A network that holds a peer, and every UDP port of one.
    wide = _with(_rule(_match(DADDR, {"prefix": {"addr": "198.18.0.0", "len": 24}}), ACCEPT))
    assert any("198.18.0.0/24 (peer reachable" in p for p in egress.peer_problems(wide, ALLOWANCE))
    udp = _with(
        _rule(_match(DADDR, "198.18.0.12"), _match({"meta": {"key": "l4proto"}}, "udp"), ACCEPT)
    )
    assert any(
        "peer reachable on every port (udp)" in p for p in egress.peer_problems(udp, ALLOWANCE)
    )
    # The lab's own ruleset, and rules that name no peer, are no peer problem.
    assert egress.peer_problems(LAB, ALLOWANCE) == []
    elsewhere = _with(_rule(_match(DADDR, "198.18.0.254"), ACCEPT))
    assert egress.peer_problems(elsewhere, ALLOWANCE) == []


REGIONAL = json.loads((Path(__file__).parent / "data" / "nft-example-lb1.json").read_text())
REGIONAL_HOSTS = [f"192.0.2.{n}" for n in (11, 12, 21, 22, 23, 31, 32, 33, 41, 42, 43, 51)]
DB = [f"192.0.2.{n}" for n in (41, 42, 43)]
LB1_SERVICES = [
    {"name": "load-balancer-keycloak", "addresses": ["192.0.2.21", "192.0.2.22", "192.0.2.23"],
     "protocol": "tcp", "ports": [8080, 9000]},
    {"name": "load-balancer-nextcloud", "addresses": ["192.0.2.31", "192.0.2.32", "192.0.2.33"],
     "protocol": "tcp", "ports": [8081]},
    {"name": "load-balancer-postgresql", "addresses": DB, "protocol": "tcp", "ports": [5432, 8008]},
    {"name": "load-balancer-redis", "addresses": DB, "protocol": "tcp", "ports": [6379]},
    {"name": "vrrp", "addresses": ["192.0.2.12"], "protocol": "vrrp", "ports": []},
]  # fmt: skip


def _regional(peers: bool) -> egress.Allowance:
    services = [egress.PeerService.from_inventory(s) for s in LB1_SERVICES] if peers else None
    return egress.Allowance.build(POLICY, REGIONAL_HOSTS, 22, ["192.0.2.200/29"], services)


@pytest.mark.parametrize("known", [True, False], ids=["services-known", "services-unknown"])
def test_per_service_peer_rules_pass(known: bool) -> None:
    # Per-port rules to the backends and VRRP to the other load balancer, whether the
    # check knows the inventory's services or only the deployment's addresses.
    assert egress.ruleset_problems(REGIONAL, _regional(known)) == []
    assert egress.peer_problems(REGIONAL, _regional(known)) == []


def _regional_with(*expr: dict[str, Any]) -> dict[str, Any]:
    """lb1's ruleset with a rule of `expr` first in its output chain."""
    ruleset = copy.deepcopy(REGIONAL)
    entries = ruleset["nftables"]
    first = next(i for i, e in enumerate(entries) if e.get("rule", {}).get("chain") == "output")
    rule = {"family": "inet", "table": "educloud", "chain": "output", "handle": 900}
    entries.insert(first, {"rule": {**rule, "expr": list(expr)}})
    return ruleset


def test_a_peer_port_no_service_uses_is_named_when_services_are_known() -> None:
    ssh_to_db = _regional_with(_match(DADDR, "192.0.2.41"), _match(TCP_DPORT, 22), ACCEPT)
    problems = egress.peer_problems(ssh_to_db, _regional(True))
    assert any("192.0.2.41/32 tcp/22" in p for p in problems), problems
    assert egress.peer_problems(ssh_to_db, _regional(False)) == []  # a port, not every port
    # VRRP (IP protocol 112) to a host that is no load balancer.
    l4proto = {"meta": {"key": "l4proto"}}
    vrrp = _regional_with(_match(DADDR, "192.0.2.41"), _match(l4proto, 112), ACCEPT)
    problems = egress.peer_problems(vrrp, _regional(True))
    assert any("192.0.2.41/32 (peer reachable" in p for p in problems), problems


def test_ssh_sources_are_read_on_the_input_side() -> None:
    admins = ["127.0.0.1/32", "198.18.0.1/32"]
    assert egress.inbound_problems(LAB, 22, admins) == []
    widened = copy.deepcopy(LAB)
    for entry in widened["nftables"]:
        if entry.get("set", {}).get("name") == "ssh_sources_v4":
            entry["set"]["elem"].append({"prefix": {"addr": "198.18.0.64", "len": 27}})
    problems = egress.inbound_problems(widened, 22, admins)
    assert any("SSH (tcp/22) accepted from 198.18.0.64/27" in p for p in problems), problems
    anyone = _with(_rule(_match(TCP_DPORT, 22), ACCEPT), chain="input")
    problems = egress.inbound_problems(anyone, 22, admins)
    assert any("SSH (tcp/22) accepted from every address" in p for p in problems), problems
    # Without the SSH settings, only the default deny is checked (as before).
    assert egress.inbound_problems(widened) == []


def test_jumps_gotos_and_verdict_maps_are_followed() -> None:
    sneaky_chain = {"chain": {"family": "inet", "table": "educloud", "name": "sneaky"}}
    jump = _with(
        sneaky_chain,
        _rule(ACCEPT, chain="sneaky"),
        _rule(
            _match({"payload": {"protocol": "udp", "field": "dport"}}, 53),
            {"jump": {"target": "sneaky"}},
        ),
    )
    problems = egress.ruleset_problems(jump, ALLOWANCE)
    assert any("sneaky" in p and "udp" in p and "port 53" in p for p in problems), problems
    vmap = _with(
        _rule({"vmap": {"key": DADDR, "data": {"set": [["198.18.0.254", {"accept": None}]]}}})
    )
    problems = egress.ruleset_problems(vmap, ALLOWANCE)
    assert any("198.18.0.254/32 (every port)" in p for p in problems), problems
    # A verdict map over connection states that accepts only answers is fine.
    states = _with(
        _rule(
            {
                "vmap": {
                    "key": {"ct": {"key": "state"}},
                    "data": {"set": [["established", ACCEPT], ["related", ACCEPT]]},
                }
            }
        )
    )
    assert egress.ruleset_problems(states, ALLOWANCE) == []


def test_concatenated_sets_are_read() -> None:
    pairs = {
        "set": {
            "family": "inet",
            "table": "educloud",
            "name": "pairs",
            "type": ["ipv4_addr", "inet_service"],
            "elem": [{"concat": ["198.18.0.254", 8443]}, {"concat": ["198.18.0.1", 3142]}],
        }
    }
    broken = _with(pairs, _rule(_match({"concat": [DADDR, TCP_DPORT]}, "@pairs"), ACCEPT))
    problems = egress.ruleset_problems(broken, ALLOWANCE)
    assert any("198.18.0.254/32 tcp/8443" in p for p in problems), problems
    assert not any("198.18.0.1/32 tcp/3142" in p for p in problems), problems


def test_other_tables_and_rewrites_count() -> None:
    table = {"table": {"family": "ip", "name": "sneaky"}}
    nat = {
        "chain": {
            "family": "ip",
            "table": "sneaky",
            "name": "out",
            "type": "nat",
            "hook": "output",
            "policy": "accept",
        }
    }
    dnat = _with(
        table,
        nat,
        _rule(
            {"dnat": {"addr": "198.18.0.254", "port": 8443}},
            family="ip",
            table="sneaky",
            chain="out",
        ),
    )
    assert any("dnat" in p for p in egress.ruleset_problems(dnat, ALLOWANCE))
    # A filter chain of another table that lets through what it does not match.
    open_chain = _with(table, {**nat, "chain": {**nat["chain"], "type": "filter"}})
    problems = egress.ruleset_problems(open_chain, ALLOWANCE)
    assert any("ip sneaky out" in p and "lets out" in p for p in problems), problems


def test_policy_accept_without_final_reject_fails() -> None:
    broken = copy.deepcopy(LAB)
    entries = broken["nftables"]
    for entry in entries:
        if entry.get("chain", {}).get("name") == "output":
            entry["chain"]["policy"] = "accept"
    broken["nftables"] = [
        e for e in entries if not ("rule" in e and any("reject" in x for x in e["rule"]["expr"]))
    ]
    problems = egress.ruleset_problems(broken, ALLOWANCE)
    assert "no output chain refuses IPv4 traffic by default" in problems
    assert any("policy accept" in p for p in problems), problems


def test_no_output_chain_fails() -> None:
    assert egress.ruleset_problems({"nftables": []}, ALLOWANCE)[:2] == [
        "no output chain refuses IPv4 traffic by default",
        "no output chain refuses IPv6 traffic by default",
    ]


def test_icmpv6_limited_to_neighbour_discovery() -> None:
    any_icmpv6 = _with(_rule(_match({"meta": {"key": "l4proto"}}, "ipv6-icmp"), ACCEPT))
    problems = egress.ruleset_problems(any_icmpv6, ALLOWANCE)
    assert any("accepts every destination (ipv6-icmp)" in p for p in problems), problems


def test_probe_targets_and_outcomes() -> None:
    targets = egress.probe_targets("198.18.0.254", 8443, ALLOWANCE)
    assert ("198.18.0.254", 8443, "tcp") in targets
    assert ("198.18.0.254", 53, "udp") in targets
    assert ("198.18.0.254", 3142, "tcp") in targets  # a listed port, at the decoy
    assert ("198.18.0.1", 443, "tcp") in targets  # a listed address, another port
    assert ("198.18.0.1", 3142, "tcp") not in targets  # allowed: never probed
    assert ("198.18.0.12", 22, "tcp") not in targets  # the backup target's SSH: listed
    refused = [{"user": "www-data", "probes": [["198.18.0.254", 443, "tcp", "EHOSTUNREACH"]]}]
    assert egress.probe_problems(refused) == []
    leaked = [{"user": "postgres", "probes": [["198.18.0.254", 53, "udp", "sent"]]}]
    assert egress.probe_problems(leaked) == [
        "as postgres: 198.18.0.254 udp/53 sent (not refused by the host's firewall)"
    ]
    assert egress.probe_problems([]) == ["the probe ran as no account"]


# Found by an adversarial review: rulesets that let packets out although every accepting
# path looked narrow (each was confirmed on the wire in a network namespace).
def test_dormant_tables_rewrites_returns_runtime_sets_and_forwarding_fail() -> None:
    dormant = copy.deepcopy(LAB)
    for entry in dormant["nftables"]:
        if "table" in entry:
            entry["table"]["flags"] = ["dormant"]
    assert any("dormant" in p for p in egress.ruleset_problems(dormant, ALLOWANCE))
    rewrite = _with(
        _rule(
            _match(DADDR, "198.18.0.1"),
            _match(TCP_DPORT, 3142),
            {"mangle": {"key": DADDR, "value": "203.0.113.9"}},
            ACCEPT,
        )
    )
    assert any("rewrites" in p for p in egress.ruleset_problems(rewrite, ALLOWANCE))
    returned = _with(
        _rule(_match({"payload": {"protocol": "udp", "field": "dport"}}, 53), {"return": None})
    )
    for entry in returned["nftables"]:
        if entry.get("chain", {}).get("name") == "output":
            entry["chain"]["policy"] = "accept"
    assert any("port 53" in p for p in egress.ruleset_problems(returned, ALLOWANCE))
    learned = _with(
        _rule({"set": {"op": "add", "elem": DADDR, "set": "@learned"}}),
        {
            "set": {
                "family": "inet",
                "table": "educloud",
                "name": "learned",
                "type": "ipv4_addr",
                "flags": ["timeout"],
            }
        },
        first=False,
    )
    assert any("run time" in p for p in egress.ruleset_problems(learned, ALLOWANCE))
    forwarding = copy.deepcopy(LAB)
    for entry in forwarding["nftables"]:
        if entry.get("chain", {}).get("name") == "forward":
            entry["chain"]["policy"] = "accept"
    problems = egress.ruleset_problems(forwarding, ALLOWANCE)
    assert any("forward" in p and "lets out" in p for p in problems), problems


def _link_scope_match(expr: dict[str, Any]) -> bool:
    match = expr.get("match") or {}
    payload = (match.get("left") or {}).get("payload") or {}
    return payload == {"protocol": "ip6", "field": "daddr"} and isinstance(match.get("right"), dict)


def test_neighbour_discovery_only_on_the_link() -> None:
    routed = copy.deepcopy(LAB)
    for entry in routed["nftables"]:
        rule = entry.get("rule")
        if rule and any(
            "match" in e and e["match"]["left"].get("payload", {}).get("protocol") == "ip6"
            for e in rule["expr"]
        ):
            rule["expr"] = [
                e
                for e in rule["expr"]
                if not (
                    "match" in e
                    and e["match"]["left"].get("payload", {}).get("field") == "daddr"
                    and e["match"]["left"]["payload"]["protocol"] == "ip6"
                    and isinstance(e["match"]["right"], dict)
                )
            ]
    problems = egress.ruleset_problems(routed, ALLOWANCE)
    assert any("accepts every destination" in p for p in problems), problems
