"""Each server refuses to talk to anyone the egress policy does not list (C5, C2, C12)."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from educloud.charter import egress
from educloud.deployment.model import SSH_SETTINGS, Deployment
from educloud.policy import Policies

# An address not on any egress list. The lab serves a decoy there, so a missing
# firewall shows as a connection that succeeds; elsewhere TEST-NET-1 (RFC 5737).
DEFAULT_PROBE = "192.0.2.1:443"

PROBE = """
import errno, socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.settimeout(5)
if len(sys.argv) > 3:
    s.bind(("", int(sys.argv[3])))  # a known source port finds the log line
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("connected")
except socket.timeout:
    print("timeout")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
"""


def _probe(target: Any, address: str, port: int, source_port: int = 0) -> str:
    # The probe runs as an unprivileged user: what any service could do.
    command = target.run(
        "runuser -u nobody -- python3 -c %s %s %s %s", PROBE, address, str(port), str(source_port)
    )
    return str(command.stdout.strip())


def _probe_target(deployment: Deployment, host_name: str) -> tuple[str, int]:
    value = str(
        deployment.host(host_name).variables.get("educloud_verify_egress_probe", DEFAULT_PROBE)
    )
    address, _, port = value.rpartition(":")
    return address.strip("[]"), int(port)


def _allowance(
    host_name: str,
    deployment: Deployment,
    policies: Policies,
    inventory_value: Callable[[str, str], Any],
) -> egress.Allowance:
    """What the host may send: policies/egress.yml, the deployment's own hosts (on the ports
    a rule names, never every port: which services each peer answers on is its own input
    rules'), and the SSH server's answers to the administrators' networks (all from the
    inventory)."""
    ssh = inventory_value(host_name, SSH_SETTINGS)
    networks, port = ssh["networks"], ssh["port"]
    return egress.Allowance.build(
        policies.destinations,
        [h.address for h in deployment.hosts],
        int(port),
        [str(n) for n in (networks if isinstance(networks, list) else [networks])],
    )


@pytest.mark.charter("C5")
def test_egress_default_deny_loaded(
    host_name: str,
    deployment: Deployment,
    connect: Callable[[str], Any],
    policies: Policies,
    inventory_value: Callable[[str, str], Any],
    evidence: Callable[[str], None],
) -> None:
    """Every rule that can let a packet out, in every table, family and chain (and the sets
    and maps it reads), permits only what the allow-list permits."""
    ruleset = json.loads(connect(host_name).check_output("nft -j list ruleset"))
    allowance = _allowance(host_name, deployment, policies, inventory_value)
    own = ", ".join(sorted(str(n) for n in allowance.own))
    admins = ", ".join(sorted(str(n) for n in allowance.ssh_networks))
    evidence(
        f"{host_name} : chaînes de sortie {egress.describe_chains(ruleset, 'output')} ; "
        f"autorisé : {len(allowance.destinations)} destinations de egress.yml, hôtes du "
        f"déploiement {own}, réponses SSH (port {allowance.ssh_port}) vers {admins}"
    )
    problems = egress.ruleset_problems(ruleset, allowance)
    assert not problems, "; ".join(problems)


@pytest.mark.charter("C10")
def test_peers_reachable_only_on_their_services(
    host_name: str,
    deployment: Deployment,
    connect: Callable[[str], Any],
    policies: Policies,
    inventory_value: Callable[[str, str], Any],
    evidence: Callable[[str], None],
) -> None:
    """Least privilege between the deployment's own hosts (issue #29): no path out of the
    host reaches one of them on every port (`ip daddr @peers accept`), only named services."""
    ruleset = json.loads(connect(host_name).check_output("nft -j list ruleset"))
    allowance = _allowance(host_name, deployment, policies, inventory_value)
    peer_rules = [
        f"{r.get('comment')}"
        for r in (i["rule"] for i in ruleset.get("nftables", []) if "rule" in i)
        if str(r.get("comment", "")).startswith("peer: ")
    ]
    evidence(
        f"{host_name} : règles vers les hôtes du déploiement "
        f"({', '.join(sorted(str(n) for n in allowance.own))}) : "
        f"{', '.join(peer_rules) or 'aucune'}"
    )
    problems = egress.peer_problems(ruleset, allowance)
    assert not problems, "; ".join(problems)


# Seconds between two tokens of the egress log rule's "limit rate 10/minute".
LOG_TOKEN_SECONDS = 7


def _logged_refusal(
    target: Any, host_name: str, address: str, port: int
) -> tuple[str, str, list[str]]:
    """Probe from a chosen source port; the probe's outcome and the kernel log lines of
    that refusal."""
    source_port = 40000 + secrets.randbelow(20000)
    outcome = _probe(target, address, port, source_port)
    container = target.run("systemd-detect-virt --container").stdout.strip()
    if container == "systemd-nspawn" and Path("/proc/sys/net/netfilter/nf_log_all_netns").exists():
        # A lab host: its kernel messages land in the lab machine's kernel log (this one).
        where = "journal noyau de la machine du banc de test (l'hôte en est un conteneur)"
        journal = subprocess.run(["dmesg"], capture_output=True, text=True, check=False).stdout
    else:
        where = f"journal noyau de {host_name}"
        journal = target.run(
            "journalctl -k -o cat --no-pager --since=-10min --grep educloud-egress-drop"
        ).stdout
    lines = [
        line
        for line in journal.splitlines()
        if "educloud-egress-drop" in line
        and f"DST={address} " in line
        and f"SPT={source_port} " in line
    ]
    return outcome, where, lines


@pytest.mark.charter("C5")
def test_refused_connection_logged(
    host_name: str,
    deployment: Deployment,
    connect: Callable[[str], Any],
    evidence: Callable[[str], None],
) -> None:
    target = connect(host_name)
    address, port = _probe_target(deployment, host_name)
    # The log rule is rate-limited (10 a minute, common role): this check comes before the
    # one that sends many refused probes, and waits for the next token if another check's
    # refusals took the last one.
    for attempt in (1, 2):
        if attempt == 2:
            time.sleep(LOG_TOKEN_SECONDS)
        outcome, where, lines = _logged_refusal(target, host_name, address, port)
        if lines or outcome not in egress.REFUSED_BY_FIREWALL:
            break  # logged, or not refused at all: nothing to wait for
    evidence(f"{host_name} : {where} : {lines[-1].strip() if lines else 'aucun refus journalisé'}")
    assert outcome in egress.REFUSED_BY_FIREWALL, (
        f"{address}:{port} was not refused by the host's firewall ({outcome}): nothing to log"
    )
    assert lines, f"no 'educloud-egress-drop' log line for {address}:{port}"


def _refused(target: Any) -> int:
    return egress.refused_count(json.loads(target.check_output("nft -j list ruleset")))


@pytest.mark.charter("C5", "C2", "C12")
def test_unlisted_destination_refused(
    host_name: str,
    deployment: Deployment,
    connect: Callable[[str], Any],
    policies: Policies,
    inventory_value: Callable[[str, str], Any],
    evidence: Callable[[str], None],
) -> None:
    """As every account that runs a process on the host (and nobody), connections to
    destinations outside the allow-list, over TCP and UDP on several ports, are refused by
    the host's own firewall, and its refusal counter counts them."""
    target = connect(host_name)
    address, port = _probe_target(deployment, host_name)
    allowance = _allowance(host_name, deployment, policies, inventory_value)
    targets = egress.probe_targets(address, port, allowance)
    before = _refused(target)
    probe = target.run(
        "python3 -c %s %s", egress.PROBE_AS_EVERY_ACCOUNT, json.dumps([list(t) for t in targets])
    )
    refused = _refused(target) - before
    assert probe.rc == 0, f"the probe did not run on {host_name}: {probe.stderr.strip()[-300:]}"
    results = json.loads(probe.stdout)
    sent = sum(len(account["probes"]) for account in results)
    evidence(
        f"{host_name} : {len(targets)} destinations hors liste "
        f"({', '.join(f'{a} {p}/{n}' for a, n, p in targets)}) essayées par chacun des comptes "
        f"{', '.join(a['user'] for a in results)} ; {sent} essais, paquets refusés et comptés "
        f"par le pare-feu : {refused}"
    )
    problems = egress.probe_problems(results)
    if not problems and refused < sent:
        problems.append(
            f"{sent} connections were refused but the firewall's refusal counters rose by "
            f"{refused} only: something else refused them"
        )
    assert not problems, "; ".join(problems[:12]) + (
        f" (and {len(problems) - 12} more)" if len(problems) > 12 else ""
    )


@pytest.mark.charter("C5")
def test_listed_destination_reachable(
    host_name: str,
    connect: Callable[[str], Any],
    policies: Policies,
    evidence: Callable[[str], None],
) -> None:
    listed = [d for d in policies.destinations if d.protocol == "tcp" and "/" not in d.address]
    if not listed:
        pytest.skip("aucune destination TCP à essayer dans la politique de sortie")
    target = connect(host_name)
    failures = []
    for destination in listed:
        outcome = _probe(target, destination.address, destination.port)
        evidence(
            f"{host_name} -> {destination.name} {destination.address}:{destination.port}: {outcome}"
        )
        if outcome != "connected":
            failures.append(f"{destination.name}: {outcome}")
    assert not failures, f"listed destinations not reachable: {failures}"
