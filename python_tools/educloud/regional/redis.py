"""Redis and Sentinel as the drills see them: each server's role, and a write through the
load balancer. The password goes over SSH's standard input, never on a command line."""

from __future__ import annotations

from dataclasses import dataclass

from educloud.deployment.inventory import InventoryHost
from educloud.errors import EducloudError
from educloud.remote import call

# A RESP client on the remote host (python3 is on every host; redis-cli is not on the load
# balancer): the password is read from stdin, the commands from argv.
_RESP_CLIENT = (
    "import socket, sys\n"
    "password = sys.stdin.readline().rstrip('\\n')\n"
    "host, port, *words = sys.argv[1:]\n"
    "def encode(parts):\n"
    "    out = b'*%d\\r\\n' % len(parts)\n"
    "    for part in parts:\n"
    "        data = part.encode()\n"
    "        out += b'$%d\\r\\n%s\\r\\n' % (len(data), data)\n"
    "    return out\n"
    "s = socket.create_connection((host, int(port)), timeout=5)\n"
    # QUIT: Redis answers every command, then closes; the replies are read to the end.
    "s.sendall(encode(['AUTH', password]) + encode(words) + encode(['QUIT']))\n"
    "reply = b''\n"
    "while chunk := s.recv(65536):\n"
    "    reply += chunk\n"
    "sys.stdout.write(reply.decode(errors='replace'))\n"
)


@dataclass(frozen=True)
class Replication:
    role: str  # master or slave
    master_host: str | None


def _command(host: InventoryHost, address: str, port: int, password: str, *words: str) -> str:
    answer = call(
        host,
        ["python3", "-c", _RESP_CLIENT, address, str(port), *words],
        timeout=30,
        input_text=password + "\n",
    )
    if answer.returncode != 0:
        raise EducloudError(
            f"{host.name}: Redis at {address}:{port} did not answer: {answer.said()}"
        )
    lines = answer.stdout.splitlines()  # text mode: the \r\n of RESP arrive as \n
    if not lines or lines[0] != "+OK":
        raise EducloudError(f"{host.name}: Redis at {address}:{port} refused the password")
    return "\n".join(lines[1:])


def replication(host: InventoryHost, address: str, password: str, port: int = 6379) -> Replication:
    """INFO replication of the server at `address`, asked from `host`."""
    text = _command(host, address, port, password, "INFO", "replication")
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return Replication(fields.get("role", "unknown"), fields.get("master_host"))


def write_through(host: InventoryHost, address: str, port: int, password: str, key: str) -> bool:
    """SET `key` at `address` (the load balancer's frontend): True when the write was taken,
    which only a master does (a replica answers READONLY)."""
    return _command(host, address, port, password, "SET", key, "drill").startswith("+OK")
