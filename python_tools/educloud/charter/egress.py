"""Does a host's firewall let out only what policies/egress.yml and the inventory allow? (C5)

Reads the JSON of `nft -j list ruleset` (every table, family and chain on the output and
postrouting hooks, the chains they jump to, sets and maps: educloud.charter.nftables) and
answers with everything it lets out beyond the allow-list, so that a unit test can feed it
a broken ruleset and see it fail.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from educloud.charter import nftables
from educloud.charter.nftables import PORT_PROTOCOLS, Network
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


# ICMPv6 messages a host must send for IPv6 to work on its link at all (neighbour and
# router discovery, multicast listener reports), allowed to link-scope addresses only.
NEIGHBOUR_DISCOVERY = frozenset(
    {
        "nd-router-solicit",
        "nd-neighbor-solicit",
        "nd-neighbor-advert",
        "mld-listener-report",
        "mld2-listener-report",
    }
)
# Where neighbour discovery may go: the link itself (link-local and link-scope multicast),
# never a routed address (an NS message can carry a payload of the sender's choosing).
LINK_SCOPE = (ipaddress.ip_network("fe80::/10"), ipaddress.ip_network("ff02::/16"))
# Connection states whose packets answer or belong to a connection already allowed.
ANSWERS = frozenset({"established", "related"})


@dataclass(frozen=True)
class PeerService:
    """A service of the deployment's own hosts that a host may use (common_egress_peers)."""

    name: str
    addresses: frozenset[Network]
    protocol: str  # tcp, udp; or an IP protocol without ports (vrrp)
    ports: frozenset[int] = frozenset()

    @classmethod
    def from_inventory(cls, entry: Mapping[str, Any]) -> PeerService:
        return cls(
            name=str(entry["name"]),
            addresses=frozenset(
                ipaddress.ip_network(str(a), strict=False) for a in entry["addresses"]
            ),
            protocol=str(entry["protocol"]),
            ports=frozenset(int(p) for p in entry.get("ports") or []),
        )


# IP protocols a peer may be sent without ports: VRRP between load balancers.
PORTLESS_PEER_PROTOCOLS = frozenset({"vrrp"})


@dataclass(frozen=True)
class Allowance:
    """What a host may send, derived from policies/egress.yml and the inventory."""

    destinations: tuple[Destination, ...]
    # The deployment's own hosts (their inventory addresses): peers, never on every port.
    own: frozenset[Network]
    # The SSH server's answers go back to the administrators' networks only.
    ssh_port: int = 22
    ssh_networks: frozenset[Network] = frozenset()
    # The peers' services this host uses (common_egress_peers). None: not known here, and
    # a peer may be reached on any port or protocol that a rule names (its own input rules
    # decide what answers), never on every port.
    peers: tuple[PeerService, ...] | None = None

    @classmethod
    def build(
        cls,
        destinations: Iterable[Destination],
        own_addresses: Iterable[str],
        ssh_port: int,
        ssh_networks: Iterable[str],
        peers: Iterable[PeerService] | None = None,
    ) -> Allowance:
        own = set()
        for address in own_addresses:
            try:
                network = ipaddress.ip_network(address, strict=False)
            except ValueError:
                continue  # a name, not an address: the firewall cannot name it either
            if not network.network_address.is_loopback:
                own.add(network)
        return cls(
            destinations=tuple(destinations),
            own=frozenset(own),
            ssh_port=ssh_port,
            ssh_networks=frozenset(ipaddress.ip_network(n, strict=False) for n in ssh_networks),
            peers=None if peers is None else tuple(peers),
        )

    def _within(self, network: Network, allowed: Iterable[Network]) -> bool:
        return any(
            network.version == other.version and network.subnet_of(other)  # type: ignore[arg-type]
            for other in allowed
        )

    def reaches_peer(self, network: Network) -> bool:
        """Whether `network` holds an address of the deployment's own hosts."""
        return any(network.version == o.version and network.overlaps(o) for o in self.own)

    def _peer_permits(self, network: Network, protocol: str, port: int | None) -> bool:
        if not self._within(network, self.own):
            return False
        if self.peers is None:
            return port is not None or protocol in PORTLESS_PEER_PROTOCOLS
        return any(
            service.protocol == protocol
            and (port in service.ports if port is not None else not service.ports)
            and self._within(network, service.addresses)
            for service in self.peers
        )

    def permits(self, network: Network, protocol: str, port: int) -> bool:
        if self._peer_permits(network, protocol, port):
            return True
        return any(
            d.protocol == protocol
            and d.port == port
            and self._within(network, [ipaddress.ip_network(d.address, strict=False)])
            for d in self.destinations
        )

    def path_problem(self, path: nftables.Path) -> str | None:
        """None when `path` lets out only what the allowance permits; else what it lets
        out, named after its chain and rule."""
        where = f"{path.chain} {path.rule}".strip()
        if path.ct_state is not None and path.ct_state <= ANSWERS:
            return None
        if path.oif is not None and path.oif <= {"lo"}:
            return None
        if (
            path.icmpv6_types is not None
            and path.icmpv6_types <= NEIGHBOUR_DISCOVERY
            and path.daddr is not None
            and all(self._within(n, LINK_SCOPE) for n in path.daddr)
        ):
            return None
        if (
            path.sports == frozenset({self.ssh_port})
            and path.protocols == frozenset({"tcp"})
            and path.daddr is not None
            and all(self._within(n, self.ssh_networks) for n in path.daddr)
        ):
            return None
        if path.tuples is not None:
            outside = sorted(
                f"{n} {proto}/{port}"
                for n, proto, port in path.tuples
                if not self.permits(n, proto, port)
            )
            return f"{where}: accepts {', '.join(outside)}" if outside else None
        if path.daddr is None:
            return f"{where}: accepts every destination{_described(path)}"
        outside = []
        for network in sorted(path.daddr, key=str):
            if path.dports is None or path.protocols is None:
                portless = path.protocols is not None and not path.protocols & PORT_PROTOCOLS
                if portless and all(
                    self._peer_permits(network, protocol, None) for protocol in path.protocols or ()
                ):
                    continue
                if self.reaches_peer(network):
                    outside.append(f"{network} (peer reachable on every port{_described(path)})")
                else:
                    outside.append(f"{network} (every port)")
                continue
            outside += [
                f"{network} {protocol}/{port}"
                for protocol in sorted(path.protocols)
                for port in sorted(path.dports)
                if not self.permits(network, protocol, port)
            ]
        return f"{where}: accepts {', '.join(outside)}" if outside else None

    def peer_problem(self, path: nftables.Path) -> str | None:
        """What `path` lets out to the deployment's own hosts beyond their services (C10);
        None when it names no peer or only what the allowance permits."""
        if path.daddr is None:
            return None  # every destination: the allow-list's problem (C5), not a peer's
        if path.tuples is not None:
            tuples = frozenset(t for t in path.tuples if self.reaches_peer(t[0]))
            return self.path_problem(replace(path, tuples=tuples)) if tuples else None
        peers = frozenset(n for n in path.daddr if self.reaches_peer(n))
        return self.path_problem(replace(path, daddr=peers)) if peers else None


def _described(path: nftables.Path) -> str:
    said = []
    if path.protocols:
        said.append("/".join(sorted(path.protocols)))
    if path.dports:
        said.append(f"port {','.join(str(p) for p in sorted(path.dports))}")
    if path.sports:
        said.append(f"source port {','.join(str(p) for p in sorted(path.sports))}")
    if path.ct_state:
        said.append(f"ct state {','.join(sorted(path.ct_state))}")
    return f" ({', '.join(said)})" if said else ""


def ruleset_problems(ruleset: dict[str, Any], allowance: Allowance) -> list[str]:
    """Empty when every path out of the host is one the allowance permits: answers to
    allowed connections, loopback, the SSH server's answers, neighbour discovery, a
    destination of egress.yml (address, protocol and port) or a host of the deployment;
    refused connections logged. Anything broader is named."""
    analysis = nftables.analyse(ruleset)
    problems = []
    for family, name in (("ip", "IPv4"), ("ip6", "IPv6")):
        if family not in analysis.gated_families:
            problems.append(f"no output chain refuses {name} traffic by default")
    problems += [f"{chain}: lets out what it does not match" for chain in analysis.open_chains]
    for found in (*analysis.detached_tables, *analysis.leaks, *analysis.changing_sets):
        if found not in problems:
            problems.append(found)
    for path in analysis.accepts:
        problem = allowance.path_problem(path)
        if problem and problem not in problems:
            problems.append(problem)
    logged = any(
        expr.get("log", {}).get("prefix") == DENY_LOG_PREFIX
        for chain in _output_chains(ruleset)
        for rule in _rules(ruleset, chain)
        for expr in rule.get("expr", [])
    )
    if not logged:
        problems.append(f"refused connections are not logged (prefix {DENY_LOG_PREFIX!r})")
    return problems


def peer_problems(ruleset: dict[str, Any], allowance: Allowance) -> list[str]:
    """Empty when the deployment's own hosts are reached only on the services the allowance
    names (C10, least privilege): a rule that accepts a peer on every port (`ip daddr @peers
    accept`) or on a port none of its services uses is named. The rest of the allow-list
    (other destinations, accept-all rules) is ruleset_problems' (C5)."""
    problems = []
    for path in nftables.analyse(ruleset).accepts:
        problem = allowance.peer_problem(path)
        if problem and problem not in problems:
            problems.append(problem)
    return problems


def inbound_problems(
    ruleset: dict[str, Any], ssh_port: int | None = None, ssh_networks: Iterable[str] = ()
) -> list[str]:
    """Empty when every input hook refuses by default (C10) and, given the SSH port, new
    SSH connections are accepted from `ssh_networks` only (every path to accept, through
    jumps and sets, read as for the output)."""
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
    if ssh_port is not None:
        allowed = [ipaddress.ip_network(n, strict=False) for n in ssh_networks]
        for path in nftables.analyse(ruleset, hooks=("input",)).accepts:
            problem = _ssh_source_problem(path, ssh_port, allowed)
            if problem and problem not in problems:
                problems.append(problem)
    return problems


def _ssh_source_problem(path: nftables.Path, port: int, allowed: list[Network]) -> str | None:
    """What new SSH connections `path` accepts from outside `allowed`, if any."""
    if path.ct_state is not None and path.ct_state <= ANSWERS:
        return None
    if path.iif is not None and path.iif <= {"lo"}:
        return None
    if path.protocols is not None and "tcp" not in path.protocols:
        return None
    if path.dports is not None and port not in path.dports:
        return None
    where = f"{path.chain} {path.rule}".strip()
    if path.saddr is None:
        return f"{where}: SSH (tcp/{port}) accepted from every address"
    outside = sorted(
        str(n)
        for n in path.saddr
        if not any(n.version == a.version and n.subnet_of(a) for a in allowed)  # type: ignore[arg-type]
    )
    if not outside:
        return None
    return f"{where}: SSH (tcp/{port}) accepted from {', '.join(outside)}"


def refused_count(ruleset: dict[str, Any]) -> int:
    """Packets the output chains' reject/drop rules have refused so far (their counters)."""
    total = 0
    for chain in _output_chains(ruleset):
        for rule in _rules(ruleset, chain):
            exprs = rule.get("expr", [])
            if any("reject" in e or "drop" in e for e in exprs):
                total += sum(int(e["counter"].get("packets", 0)) for e in exprs if "counter" in e)
    return total


# Run as root on a host: every account that runs a process there (and `nobody`) tries each
# target in a child that has dropped to that account; prints one JSON list.
PROBE_AS_EVERY_ACCOUNT = r"""
import errno, json, os, pwd, socket, sys, threading
targets = json.loads(sys.argv[1])
uids = set()
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            with open(f"/proc/{pid}/status") as status:
                uids |= {int(l.split()[1]) for l in status if l.startswith("Uid:")}
        except OSError:
            pass
try:
    uids.add(pwd.getpwnam("nobody").pw_uid)
except KeyError:
    pass


def once(address, port, protocol):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(family, kind)
    sock.settimeout(3)
    try:
        if protocol == "tcp":
            sock.connect((address, port))
            return "connected"
        sock.sendto(b"educloud-egress-probe", (address, port))
        return "sent"
    except socket.timeout:
        return "timeout"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    finally:
        sock.close()


def attempt(address, port, protocol, outcomes, index):
    outcome = once(address, port, protocol)
    if outcome == "timeout":
        # Once more from another source port: a port just reused can match a connection
        # the kernel still tracks. A firewall that lets packets go times out again.
        outcome = once(address, port, protocol)
    outcomes[index] = [address, port, protocol, outcome]


children = []
for uid in sorted(uids):
    try:
        entry = pwd.getpwuid(uid)
        name, gid = entry.pw_name, entry.pw_gid
    except KeyError:
        name, gid = str(uid), uid
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_end)
        outcomes = [None] * len(targets)
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            # All at once: a firewall that lets packets go costs one timeout, not one each.
            threads = [
                threading.Thread(target=attempt, args=(*target, outcomes, i))
                for i, target in enumerate(targets)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        except Exception as exc:
            outcomes = [["", 0, "", f"probe failed: {exc}"]]
        os.write(write_end, json.dumps(outcomes).encode())
        os._exit(0)
    os.close(write_end)
    children.append((name, uid, child, read_end))
results = []
for name, uid, child, read_end in children:
    data = b""
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        data += chunk
    os.close(read_end)
    os.waitpid(child, 0)
    results.append({"user": name, "uid": uid, "probes": json.loads(data or b"[]")})
print(json.dumps(results))
"""
# How a connection refused by the host's own firewall fails: EPERM when a rule drops it in
# the output path, EHOSTUNREACH/EACCES when a rule rejects it with ICMP administratively
# prohibited. Anything else (connected, refused by the far end, a timeout, no route) means
# the host's firewall did not refuse it.
REFUSED_BY_FIREWALL = frozenset({"EPERM", "EACCES", "EHOSTUNREACH"})
# Ports tried on the decoy beside its own: the web, DNS, NTP and QUIC, over TCP and UDP.
DECOY_PORTS = ((443, "tcp"), (80, "tcp"), (53, "tcp"), (53, "udp"), (123, "udp"), (443, "udp"))


def probe_targets(
    decoy_address: str, decoy_port: int, allowance: Allowance
) -> list[tuple[str, int, str]]:
    """Destinations the allowance refuses, to try from a host: the decoy on several ports
    and protocols, the decoy on each port the policy allows elsewhere (right port, wrong
    address), and each allowed address on ports the policy does not list for it (right
    address, wrong port)."""
    wanted = [(decoy_address, decoy_port, "tcp")]
    wanted += [(decoy_address, port, protocol) for port, protocol in DECOY_PORTS]
    wanted += [(decoy_address, d.port, d.protocol) for d in allowance.destinations]
    for destination in allowance.destinations:
        network = ipaddress.ip_network(destination.address, strict=False)
        if network.num_addresses == 1:
            address = str(network.network_address)
            wanted += [(address, port, protocol) for port, protocol in DECOY_PORTS]
    targets = []
    for address, port, protocol in wanted:
        network = ipaddress.ip_network(address)
        if (address, port, protocol) in targets or allowance.permits(network, protocol, port):
            continue
        targets.append((address, port, protocol))
    return targets


def probe_problems(results: list[dict[str, Any]]) -> list[str]:
    """Each probe that the host's firewall did not refuse, with the account that sent it."""
    problems = []
    for account in results:
        for address, port, protocol, outcome in account.get("probes", []):
            if outcome not in REFUSED_BY_FIREWALL:
                problems.append(
                    f"as {account.get('user')}: {address} {protocol}/{port} {outcome}"
                    " (not refused by the host's firewall)"
                )
    if not results:
        problems.append("the probe ran as no account")
    return problems
