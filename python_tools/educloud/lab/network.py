"""The lab's network: one bridge on the host, and the rules that keep lab traffic in.

Each lab host gets its own veth link (created by systemd-nspawn) attached to the bridge.
Safety: lab hosts have no default route, and the host drops every forwarded packet
that comes from or goes to the lab bridge, so no lab traffic can leave this machine.
The host accepts from lab links only the apt proxy, the artifact server, the SMTP sink,
the backup provider's SFTP and S3 storage, and the decoy.
"""

from __future__ import annotations

from pathlib import Path

from educloud.commands import run
from educloud.errors import EducloudError
from educloud.lab.settings import (
    APT_PROXY_PORT,
    ARTIFACT_PORT,
    BRIDGE_ADDRESS,
    BRIDGE_NAME,
    DECOY_ADDRESS,
    DECOY_PORT,
    LAB_NETWORK,
    NFT_TABLE,
    S3_PORT,
    SFTP_PORT,
    SMTP_SINK_PORT,
)

NF_LOG_ALL_NETNS = Path("/proc/sys/net/netfilter/nf_log_all_netns")


def _link_exists(name: str) -> bool:
    return run(["ip", "link", "show", name], what="reading links", check=False).returncode == 0


LAB_SERVICE_PORTS = f"{APT_PROXY_PORT}, {ARTIFACT_PORT}, {SMTP_SINK_PORT}, {SFTP_PORT}, {S3_PORT}"


def nft_ruleset() -> str:
    return f"""
table inet {NFT_TABLE} {{
    comment "managed by educloud lab: keeps lab traffic on this machine"
    chain forward {{
        type filter hook forward priority filter - 10; policy accept;
        iifname "{BRIDGE_NAME}" oifname != "{BRIDGE_NAME}" counter drop comment "lab -> out"
        oifname "{BRIDGE_NAME}" iifname != "{BRIDGE_NAME}" counter drop comment "out -> lab"
    }}
    chain input {{
        type filter hook input priority filter - 10; policy accept;
        iifname != "{BRIDGE_NAME}" accept
        ct state established,related accept
        ip saddr {LAB_NETWORK} ip daddr {BRIDGE_ADDRESS} tcp dport {{ {LAB_SERVICE_PORTS} }} accept
        ip saddr {LAB_NETWORK} ip daddr {DECOY_ADDRESS} tcp dport {DECOY_PORT} accept
        icmp type echo-request accept
        counter drop comment "lab hosts reach only the lab services of the host"
    }}
}}
"""


def _table_exists() -> bool:
    listed = run(["nft", "list", "table", "inet", NFT_TABLE], what="reading nftables", check=False)
    return listed.returncode == 0


def _check_no_other_route() -> None:
    routes = run(["ip", "-o", "route", "show", str(LAB_NETWORK)], what="reading routes").stdout
    for line in routes.splitlines():
        if f" dev {BRIDGE_NAME} " not in f"{line} ":
            raise EducloudError(
                f"another interface already routes the lab network {LAB_NETWORK} ({line.strip()}); "
                "remove that address first, the lab needs the range for itself"
            )


def up() -> None:
    """Create the bridge and load the safety rules (idempotent)."""
    _check_no_other_route()
    # Rules first, so that no lab link exists without them.
    if _table_exists():
        run(["nft", "delete", "table", "inet", NFT_TABLE], what="replacing lab rules")
    run(["nft", "-f", "-"], what="loading the lab's nftables rules", input_text=nft_ruleset())
    if not _link_exists(BRIDGE_NAME):
        run(["ip", "link", "add", BRIDGE_NAME, "type", "bridge"], what="creating lab bridge")
    prefix = LAB_NETWORK.prefixlen
    for address in (f"{BRIDGE_ADDRESS}/{prefix}", f"{DECOY_ADDRESS}/32"):
        current = run(["ip", "-o", "addr", "show", "dev", BRIDGE_NAME], what="reading bridge")
        if f" {address} " not in current.stdout:
            run(["ip", "addr", "add", address, "dev", BRIDGE_NAME], what="addressing lab bridge")
    run(["ip", "link", "set", BRIDGE_NAME, "up"], what="bringing lab bridge up")
    # The lab hosts' firewalls log refused connections (charter C5); a container's
    # kernel messages go to this host's kernel log only when this is set.
    NF_LOG_ALL_NETNS.write_text("1\n", encoding="ascii")


def down() -> None:
    """Remove the bridge and the rules (idempotent)."""
    if _link_exists(BRIDGE_NAME):
        run(["ip", "link", "delete", BRIDGE_NAME], what="removing lab bridge")
    if _table_exists():
        run(["nft", "delete", "table", "inet", NFT_TABLE], what="removing lab rules")


def is_up() -> bool:
    return _link_exists(BRIDGE_NAME)
