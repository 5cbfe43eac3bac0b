"""What an nftables ruleset lets out of a host: every path to an accept, as constraints.

Reads the JSON of `nft -j list ruleset` (every table of every family) and follows each
base chain on the given hooks through its jumps, gotos and verdict maps, resolving named
sets and maps. For each path that ends in `accept` it returns the constraints the packet
must meet on that path (destination and source addresses, protocols, ports, connection
state, input and output interface, ICMPv6 type, source port). Only positive equality and
membership tests narrow a path: a negation, a range of ports, a mark or anything this
module does not read is ignored, so a path is never judged narrower than it really is
(an unknown test can only make a judgement stricter, never more lenient). Statements that
send packets past the filter (dup, fwd, queue, a rewritten destination, opaque iptables
rules) are reported as leaks wherever they appear.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# nft's transport protocols with ports; `th dport` (any transport header) means all of them.
PORT_PROTOCOLS = frozenset({"tcp", "udp", "sctp", "dccp", "udplite"})
# Statements that emit or divert packets whatever the filter's verdict.
LEAKING_STATEMENTS = {
    "dup": "duplicates packets to another address (dup)",
    "fwd": "forwards packets to another device (fwd)",
    "queue": "hands packets to a userspace program that decides (queue)",
    "dnat": "rewrites destinations (dnat)",
    "redirect": "rewrites destinations (redirect)",
    "xt": "an iptables-compat rule nft cannot show (xt)",
    "tproxy": "diverts packets to a local socket (tproxy)",
}
# Hooks whose accepting paths let packets leave: the host's own (output, postrouting) and
# what it routes for containers or virtual machines (forward).
FILTER_HOOKS = ("output", "postrouting", "forward")
# Table flags that keep a table's chains attached to their hooks; any other (dormant, or a
# flag this module does not know) means the ruleset shown is not the one in force.
ATTACHED_TABLE_FLAGS = frozenset({"owner", "persist"})
# Families that carry no IP traffic of their own.
NON_IP_FAMILIES = frozenset({"arp"})
MAX_DEPTH = 16  # nft itself refuses deeper jump chains
# IP protocol numbers nft prints as numbers when /etc/protocols does not name them.
IP_PROTOCOL_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 112: "vrrp", 132: "sctp"}


@dataclass(frozen=True)
class Path:
    """The constraints a packet meets on one path to `accept` (None: unconstrained)."""

    chain: str  # where the accept is: family table chain
    rule: str  # the rule as nft would print its handle and comment
    daddr: frozenset[Network] | None = None
    protocols: frozenset[str] | None = None
    dports: frozenset[int] | None = None
    sports: frozenset[int] | None = None
    ct_state: frozenset[str] | None = None
    oif: frozenset[str] | None = None
    icmpv6_types: frozenset[str] | None = None
    # (address, protocol, port) tuples from a concatenation (`ip daddr . tcp dport @set`).
    tuples: frozenset[tuple[Network, str, int]] | None = None
    saddr: frozenset[Network] | None = None
    iif: frozenset[str] | None = None

    def merged(self, inner: Path) -> Path:
        """The inner rule's constraints, completed by those of the rule that jumped to it
        (when both constrain a field, the inner one is kept: never narrower than true)."""
        values = {
            name: getattr(inner, name) if getattr(inner, name) is not None else getattr(self, name)
            for name in (
                "daddr",
                "protocols",
                "dports",
                "sports",
                "ct_state",
                "oif",
                "icmpv6_types",
                "tuples",
                "saddr",
                "iif",
            )
        }
        return replace(inner, **values)


@dataclass
class Analysis:
    accepts: list[Path] = field(default_factory=list)
    # Chains on the hooks that let through what they do not match (policy accept, no
    # final drop or reject); filter chains only.
    open_chains: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    # Sets whose content changes at run time (filled by the ruleset itself, or expiring).
    changing_sets: list[str] = field(default_factory=list)
    # Tables whose chains are not attached as shown (dormant, or flags not understood).
    detached_tables: list[str] = field(default_factory=list)
    # Families whose traffic some filter chain on the output hook refuses by default.
    gated_families: set[str] = field(default_factory=set)


def _items(ruleset: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [item[kind] for item in ruleset.get("nftables", []) if kind in item]


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return str(obj.get("family")), str(obj.get("table"))


def _network(value: Any) -> list[Network] | None:
    """Networks from a value of a set, a prefix or a range (None: not an address)."""
    if isinstance(value, dict) and "elem" in value:
        return _network(value["elem"].get("val"))
    if isinstance(value, dict) and "prefix" in value:
        prefix = value["prefix"]
        try:
            return [ipaddress.ip_network(f"{prefix['addr']}/{prefix['len']}", strict=False)]
        except (ValueError, KeyError, TypeError):
            return None
    if isinstance(value, dict) and "range" in value:
        try:
            low, high = (ipaddress.ip_address(v) for v in value["range"])
        except (ValueError, TypeError):
            return None
        return list(ipaddress.summarize_address_range(low, high))
    if isinstance(value, str):
        try:
            return [ipaddress.ip_network(value, strict=False)]
        except ValueError:
            return None
    return None


def _unwrap(value: Any) -> Any:
    return value["elem"].get("val") if isinstance(value, dict) and "elem" in value else value


class Ruleset:
    """A parsed `nft -j list ruleset`."""

    def __init__(self, ruleset: dict[str, Any]) -> None:
        self.chains = {(*_key(c), str(c["name"])): c for c in _items(ruleset, "chain")}
        self.rules: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for rule in _items(ruleset, "rule"):
            self.rules.setdefault((*_key(rule), str(rule.get("chain"))), []).append(rule)
        self.sets: dict[tuple[str, str, str], dict[str, Any]] = {}
        for kind in ("set", "map"):
            for named in _items(ruleset, kind):
                self.sets[(*_key(named), str(named["name"]))] = named

    def base_chains(self, hooks: tuple[str, ...]) -> list[dict[str, Any]]:
        return [c for c in self.chains.values() if c.get("hook") in hooks]

    def elements(self, family: str, table: str, reference: str) -> list[Any] | None:
        """The elements of a named set ("@name") or an anonymous set; None if unknown."""
        named = self.sets.get((family, table, reference.lstrip("@")))
        if named is None:
            return None
        return list(named.get("elem") or [])

    # --- reading one rule ---------------------------------------------------------

    def _values(self, family: str, table: str, right: Any) -> list[Any] | None:
        if isinstance(right, str) and right.startswith("@"):
            found = self.elements(family, table, right)
            return None if found is None else [_unwrap(v) for v in found]
        if isinstance(right, dict) and "set" in right:
            return [_unwrap(v) for v in right["set"]]
        if isinstance(right, list):  # flags: ct state { established, related }
            return list(right)
        return [right]

    def constraints(self, family: str, table: str, chain: str, rule: dict[str, Any]) -> Path:
        """The positive constraints of a rule's match expressions."""
        label = f"{family} {table} {chain}"
        handle = f"handle {rule.get('handle')}"
        comment = f" ({rule['comment']})" if rule.get("comment") else ""
        path = Path(label, handle + comment)
        for expr in rule.get("expr", []):
            match = expr.get("match")
            if not match or match.get("op") not in ("==", "in"):
                continue  # negations and comparisons never narrow a path here
            values = self._values(family, table, match.get("right"))
            if values is None:
                continue
            path = _narrow(path, match.get("left", {}), values)
        return path


def _ints(values: list[Any]) -> frozenset[int] | None:
    if all(isinstance(v, int) for v in values):
        return frozenset(values)
    return None  # a port range or a name: not narrowed


def _narrow(path: Path, left: dict[str, Any], values: list[Any]) -> Path:
    payload = left.get("payload") or {}
    meta = (left.get("meta") or {}).get("key")
    ct = (left.get("ct") or {}).get("key")
    field_name, protocol = payload.get("field"), payload.get("protocol")
    if field_name in ("daddr", "saddr") and protocol in ("ip", "ip6"):
        networks: list[Network] = []
        for value in values:
            found = _network(value)
            if found is None:
                return path
            networks += found
        if field_name == "saddr":
            return replace(path, saddr=frozenset(networks))
        return replace(path, daddr=frozenset(networks))
    if field_name in ("dport", "sport") and protocol:
        ports = _ints(values)
        if ports is None:
            return path
        protocols = PORT_PROTOCOLS if protocol == "th" else frozenset({protocol})
        path = replace(path, protocols=protocols)
        if field_name == "dport":
            return replace(path, dports=ports)
        return replace(path, sports=ports)
    if meta in ("l4proto", "nfproto") or (field_name == "protocol" and protocol == "ip"):
        if meta == "nfproto":
            return path
        names = [IP_PROTOCOL_NAMES.get(v, v) if isinstance(v, int) else v for v in values]
        if all(isinstance(v, str) for v in names):
            return replace(path, protocols=frozenset(str(v) for v in names))
        return path
    if field_name == "nexthdr" and protocol == "ip6":
        if all(isinstance(v, str) for v in values):
            return replace(path, protocols=frozenset(str(v) for v in values))
        return path
    if ct == "state":
        return replace(path, ct_state=frozenset(str(v) for v in values))
    if meta in ("oif", "oifname"):
        return replace(path, oif=frozenset(str(v) for v in values))
    if meta in ("iif", "iifname"):
        return replace(path, iif=frozenset(str(v) for v in values))
    if field_name == "type" and protocol == "icmpv6":
        return replace(path, icmpv6_types=frozenset(str(v) for v in values))
    if field_name == "type" and protocol == "icmp":
        return replace(path, protocols=frozenset({"icmp"}))  # `icmp type` implies ICMP
    if "concat" in left:
        return _narrow_concat(path, left["concat"], values)
    return path


def _narrow_concat(path: Path, parts: list[dict[str, Any]], values: list[Any]) -> Path:
    """`ip daddr . tcp dport @set`: explicit (address, protocol, port) tuples."""
    fields = [
        ((p.get("payload") or {}).get("field"), (p.get("payload") or {}).get("protocol"))
        for p in parts
    ]
    names = [f for f, _ in fields]
    if names.count("daddr") != 1 or names.count("dport") != 1:
        return path
    address_at, port_at = names.index("daddr"), names.index("dport")
    protocol = fields[port_at][1]
    protocols = PORT_PROTOCOLS if protocol == "th" else frozenset({str(protocol)})
    tuples: set[tuple[Network, str, int]] = set()
    for value in values:
        members = value.get("concat") if isinstance(value, dict) else None
        if not isinstance(members, list) or len(members) != len(parts):
            return path
        networks, port = _network(members[address_at]), members[port_at]
        if networks is None or not isinstance(port, int):
            return path
        tuples |= {(n, p, port) for n in networks for p in protocols}
    return replace(path, tuples=frozenset(tuples))


def _verdict(expr: dict[str, Any]) -> tuple[str, str] | None:
    for verdict in ("accept", "drop", "reject", "return", "continue"):
        if verdict in expr:
            return verdict, ""
    for verdict in ("jump", "goto"):
        if verdict in expr:
            return verdict, str((expr[verdict] or {}).get("target", ""))
    return None


def _rewrites_destination(mangle: dict[str, Any]) -> bool:
    payload = (mangle.get("key") or {}).get("payload") or {}
    return payload.get("field") in ("daddr", "dport") or "base" in payload


def _is_unconditional_refusal(rule: dict[str, Any]) -> bool:
    """A rule that refuses every packet reaching it (a final `counter reject`)."""
    verbs = [next(iter(e)) for e in rule.get("expr", [])]
    rest = [v for v in verbs if v not in ("counter", "log")]
    return rest in (["reject"], ["drop"])


def analyse(ruleset: dict[str, Any], hooks: tuple[str, ...] = FILTER_HOOKS) -> Analysis:
    """Every path to `accept` from the base chains on `hooks`, in every table."""
    parsed = Ruleset(ruleset)
    analysis = Analysis()
    for declared in _items(ruleset, "table"):
        raw_flags = declared.get("flags") or []
        flags = [raw_flags] if isinstance(raw_flags, str) else [str(f) for f in raw_flags]
        if set(flags) - ATTACHED_TABLE_FLAGS:
            analysis.detached_tables.append(
                f"{declared.get('family')} {declared.get('name')}: table flags {', '.join(flags)} "
                "(a dormant table's chains are not attached: the ruleset shown is not in force)"
            )
    for named in _items(ruleset, "set") + _items(ruleset, "map"):
        set_flags = {str(f) for f in named.get("flags") or []}
        if set_flags & {"dynamic", "timeout"} or "timeout" in named:
            analysis.changing_sets.append(
                f"{named.get('family')} {named.get('table')} set {named.get('name')}: its "
                "content changes at run time (what it holds now proves nothing)"
            )
    for chain in parsed.base_chains(hooks):
        family, table, name = str(chain["family"]), str(chain["table"]), str(chain["name"])
        if family in NON_IP_FAMILIES:
            continue
        label = f"{family} {table} {name} (hook {chain.get('hook')})"
        rules = parsed.rules.get((family, table, name), [])
        context = Path(label, "")
        # A `return` in a base chain applies its policy: with accept, it lets the packet go.
        returns_accept = chain.get("policy", "accept") == "accept"
        _walk(parsed, analysis, family, table, name, context, 0, (), returns_accept)
        if chain.get("type", "filter") != "filter":
            continue
        refuses = chain.get("policy") == "drop" or any(
            _is_unconditional_refusal(rule) for rule in rules
        )
        if not refuses:
            analysis.open_chains.append(f"{label}: policy {chain.get('policy')}")
        elif chain.get("hook") == "output":
            analysis.gated_families |= {"ip", "ip6"} if family == "inet" else {family}
    # Statements that leak wherever they are (a netdev or bridge chain too).
    for (family, table, name), rules in parsed.rules.items():
        for rule in rules:
            for expr in rule.get("expr", []):
                statement = next(iter(expr), "")
                if statement == "mangle" and _rewrites_destination(expr["mangle"]):
                    analysis.leaks.append(
                        f"{family} {table} {name} handle {rule.get('handle')}: rewrites a "
                        "packet's destination after it was judged (payload mangle)"
                    )
                if statement == "set" and isinstance(expr["set"], dict):
                    analysis.changing_sets.append(
                        f"{family} {table} {name} handle {rule.get('handle')}: adds to "
                        f"{expr['set'].get('set')} at run time (what it holds now proves nothing)"
                    )
                if statement in LEAKING_STATEMENTS and not (
                    statement in ("dnat", "redirect")
                    and parsed.chains.get((family, table, name), {}).get("hook") == "prerouting"
                ):
                    analysis.leaks.append(
                        f"{family} {table} {name} handle {rule.get('handle')}: "
                        f"{LEAKING_STATEMENTS[statement]}"
                    )
    return analysis


def _walk(
    parsed: Ruleset,
    analysis: Analysis,
    family: str,
    table: str,
    chain: str,
    context: Path,
    depth: int,
    stack: tuple[str, ...],
    returns_accept: bool = False,
) -> None:
    if depth > MAX_DEPTH or chain in stack:
        return
    for rule in parsed.rules.get((family, table, chain), []):
        path = context.merged(parsed.constraints(family, table, chain, rule))
        for expr in rule.get("expr", []):
            verdict = _verdict(expr)
            if verdict is not None and verdict[0] == "return" and returns_accept and depth == 0:
                analysis.accepts.append(path)  # the base chain's policy (accept) decides
            elif verdict is not None:
                _follow(parsed, analysis, family, table, path, verdict, depth, stack)
            vmap = expr.get("vmap")
            if vmap:
                _follow_vmap(parsed, analysis, family, table, path, vmap, depth, stack)
        if _is_unconditional_refusal(rule):
            return  # every packet reaching this rule is refused: nothing after it runs


def _follow(
    parsed: Ruleset,
    analysis: Analysis,
    family: str,
    table: str,
    path: Path,
    verdict: tuple[str, str],
    depth: int,
    stack: tuple[str, ...],
) -> None:
    kind, target = verdict
    if kind == "accept":
        analysis.accepts.append(path)
    elif kind in ("jump", "goto"):
        inner = replace(path, chain=f"{family} {table} {target}")
        _walk(parsed, analysis, family, table, target, inner, depth + 1, (*stack, path.chain))


def _follow_vmap(
    parsed: Ruleset,
    analysis: Analysis,
    family: str,
    table: str,
    path: Path,
    vmap: dict[str, Any],
    depth: int,
    stack: tuple[str, ...],
) -> None:
    data = vmap.get("data")
    if isinstance(data, str):
        pairs = parsed.elements(family, table, data) or []
    else:
        pairs = (data or {}).get("set", [])
    for pair in pairs:
        if not isinstance(pair, list) or len(pair) != 2:
            continue
        key, verdict_expr = _unwrap(pair[0]), pair[1]
        narrowed = _narrow(path, vmap.get("key", {}), [key])
        verdict = _verdict(verdict_expr) if isinstance(verdict_expr, dict) else None
        if verdict is not None:
            _follow(parsed, analysis, family, table, narrowed, verdict, depth, stack)
