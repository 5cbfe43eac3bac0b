"""The append-only probe: what a client's own key can do to its repository (C10).

`SCRIPT` runs on a backup host as root (python3 and curl, both on every host of the common
role). It reads the agent's backup.json, opens the target's forced command with the
host's own key and pinned host key (ssh's stdio carries restic's REST protocol, HTTP/2
without TLS), and tries, with curl, what ransomware on that host would, without harming a
repository where the control is broken: it rewrites an existing snapshot, pack, index, key
and the config with their own bytes; it deletes, overwrites and truncates a scratch pack of
its own (one 64-byte unreferenced file, which the operators' prune removes); it reads
another client's repository through the path; and, only for objects its caller made for
the purpose (victims), it deletes, overwrites and truncates them for real. It then lists
the repository and hashes every snapshot, index, key and the config again, to show nothing
changed. It prints one JSON document.

Used by the backup role's molecule scenario, the charter check and tests/lab's attack test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from educloud.backup.status import BackupError

SCRIPT = r"""
import hashlib, json, os, shutil, socket, subprocess, sys, tempfile, threading

config = json.load(open(sys.argv[1]))
other = sys.argv[2]
victims = json.loads(sys.argv[3]) if len(sys.argv) > 3 else []
SCRATCH = "0" * 56 + "edc10bad"
target = config["target"]
workdir = tempfile.mkdtemp(prefix="educloud-probe-")
base = ["ssh", "-i", config["ssh_key"], "-o", "UserKnownHostsFile=" + config["known_hosts"],
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p", str(target["port"]),
        "-o", "ControlPath=" + os.path.join(workdir, "cm")]
destination = target["user"] + "@" + target["address"]
# One SSH connection for the probe's many sessions (a handshake per request made the probe
# take 10-15 s per host). The master runs no session (-N: no forced command either) and
# holds none of the probe's pipes; each request is a client session of its own, which runs
# the account's forced command, and whose end closes its pipe (so a target that answers
# nothing is seen at once, not after curl's timeout). Without a master, each request makes
# its own connection (ControlMaster=no does not need one).
subprocess.run(base + ["-M", "-N", "-f", "-o", "ControlPersist=120", destination],
               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
               timeout=30, check=False)
ssh = base + ["-T", "-o", "ControlMaster=no", destination]
sock_path = os.path.join(workdir, "s")
server = socket.socket(socket.AF_UNIX)
server.bind(sock_path)
server.listen(4)

def pump(conn):
    # One ssh session (one rclone process on the target) per curl connection.
    proc = subprocess.Popen(ssh, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    def up():
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                proc.stdin.write(data)
                proc.stdin.flush()
        except OSError:
            pass
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass
    threading.Thread(target=up, daemon=True).start()
    try:
        while True:
            data = proc.stdout.read1(65536)
            if not data:
                break
            conn.sendall(data)
    except OSError:
        pass
    finally:
        conn.close()
        proc.wait()

def serve():
    while True:
        conn, _ = server.accept()
        threading.Thread(target=pump, args=(conn,), daemon=True).start()

threading.Thread(target=serve, daemon=True).start()

def request(method, path, body=None, timeout=60):
    out = os.path.join(workdir, "body")
    argv = ["curl", "-s", "--max-time", str(timeout), "--http2-prior-knowledge", "--path-as-is",
            "--unix-socket", sock_path, "-X", method, "-o", out, "-w", "%{http_code}",
            "-H", "Accept: application/vnd.x.restic.rest.v2"]
    if body is not None:
        argv += ["--data-binary", "@-"]
    done = subprocess.run(argv + ["http://backup" + path], input=body or b"",
                          capture_output=True)
    status = int(done.stdout or b"0")
    content = open(out, "rb").read() if os.path.exists(out) else b""
    if os.path.exists(out):
        os.unlink(out)
    return status, content

def digest_all():
    # Every snapshot and index, and the key and config, as bytes: what a rewrite would change.
    names = ["/snapshots/" + n for n in listing("snapshots")]
    names += ["/index/" + n for n in listing("index")] + ["/keys/" + n for n in listing("keys")]
    return {n: hashlib.sha256(request("GET", n)[1]).hexdigest() for n in names + ["/config"]}

SIZES = {}

def listing(kind):
    status, content = request("GET", "/" + kind + "/")
    try:
        names = json.loads(content) if status == 200 else []
    except ValueError:
        names = []
    for n in names:
        if isinstance(n, dict):
            SIZES[kind + "/" + n.get("name", "")] = n.get("size", 0)
    return sorted(n if isinstance(n, str) else n.get("name", "") for n in names)

def finish(result):
    # The shared connection ends with the probe.
    subprocess.run(base + ["-O", "exit", destination], stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result))
    sys.exit(0)

# A target that does not speak restic's REST protocol (no forced command, a shell, another
# program) answers nothing: said once, quickly, rather than once per attempt.
first = request("GET", "/config", timeout=20)
if first[0] == 0:
    finish({"account": target["user"], "target": target["address"], "objects": {},
            "attempts": [{"what": "read the repository's config", "method": "GET",
                          "path": "/config", "status": 0}],
            "unchanged": False, "silent": True})
before = {kind: listing(kind) for kind in ("snapshots", "data", "index", "keys")}
digests = digest_all()
# The smallest object of each kind: a rewrite sends its whole body, and the server's early
# refusal of a large one (a 16 MiB pack) can reach curl as a reset stream, not as a 403.
found = {kind: min((n for n in names if n != SCRATCH),
                   key=lambda n, k=kind: (SIZES.get(k + "/" + n, 0), n), default=None)
         for kind, names in before.items()}
junk = b"educloud append-only probe " * 4
attempts = []

def attempt(what, method, path, body=None):
    attempts.append({"what": what, "method": method, "path": path,
                     "status": request(method, path, body)[0]})

# Existing objects of every kind, rewritten with their own bytes: refused when the
# repository is append-only, harmless when it is not (the content stays the same).
for kind, what in (("snapshots", "a snapshot"), ("data", "a pack"), ("index", "an index"),
                   ("keys", "the key")):
    if found[kind] is None:
        attempts.append({"what": "rewrite " + what, "path": "/" + kind + "/", "status": None})
        continue
    path = "/" + kind + "/" + found[kind]
    status, content = request("GET", path)
    attempt("rewrite " + what, "POST", path, content if status == 200 else junk)
status, content = request("GET", "/config")
attempt("rewrite the config", "POST", "/config", content if status == 200 else junk)
# A scratch pack of the probe's own (created once, then kept: the client cannot delete
# it; the operators' prune removes it, unreferenced): delete, overwrite, truncate.
scratch = "/data/" + SCRATCH
if request("GET", scratch)[0] != 200:
    request("POST", scratch, os.urandom(64))
for what, method, body in (("delete a pack", "DELETE", None),
                           ("overwrite a pack", "POST", junk),
                           ("truncate a pack", "POST", b"")):
    attempt(what, method, scratch, body)
# Objects named by the caller (the attack test's sacrificial snapshot): the real thing.
for path in victims:
    for what, method, body in (("delete", "DELETE", None), ("overwrite", "POST", junk),
                               ("truncate", "POST", b"")):
        attempt(what + " " + path, method, path, body)
attempt("read another client's repository", "GET", "/../" + other + "/config")
after = {kind: listing(kind) for kind in ("snapshots", "data", "index", "keys")}
for names in (before["data"], after["data"]):
    if SCRATCH in names:
        names.remove(SCRATCH)
finish({
    "account": target["user"], "target": target["address"],
    "objects": {kind: len(names) for kind, names in before.items()},
    "attempts": attempts,
    "unchanged": before == after and digests == digest_all(),
})
"""

# Every attempt must be refused: a 2xx is a success of the attacker. A read of another
# repository that answers 404 found nothing to read, which is as good as a refusal.
REFUSED_READ = {403, 404, 400, 405}


@dataclass(frozen=True)
class ProbeResult:
    account: str
    objects: dict[str, int]
    attempts: tuple[dict[str, Any], ...]
    unchanged: bool
    silent: bool = False

    @property
    def succeeded(self) -> list[str]:
        """The attempts the target let through (each names what and where)."""
        found = []
        for attempt in self.attempts:
            status = attempt.get("status")
            if status is None:
                continue
            if 200 <= int(status) < 300:
                where = f"{attempt.get('method')} {attempt['path']}"
                found.append(f"{attempt['what']} ({where}: {status})")
        return found

    @property
    def untried(self) -> list[str]:
        return [a["what"] for a in self.attempts if a.get("status") is None]

    @property
    def problems(self) -> list[str]:
        if self.silent:
            return [
                "the target answered nothing in restic's REST protocol to the client's key "
                "(no forced command, or another program behind it): nothing could be tried"
            ]
        found = [f"the client's key could {what}" for what in self.succeeded]
        if not self.unchanged:
            found.append("the repository's listing or a snapshot changed during the probe")
        if not self.objects.get("snapshots"):
            found.append("no snapshot in the repository: nothing was there to attack")
        zero = [a["what"] for a in self.attempts if a.get("status") == 0]
        if zero:
            found.append("no answer from the target for: " + ", ".join(zero))
        return found


def command(
    config_path: str = "/etc/educloud/backup/backup.json",
    other: str = "",
    victims: tuple[str, ...] = (),
) -> str:
    """The shell command that runs the probe on a backup host (as root). `victims` are
    object paths (/snapshots/ID, /data/ID) the probe deletes, overwrites and truncates for
    real: only objects made for the purpose (tests/lab/test_attack_backups.py)."""
    import shlex

    return (
        f"python3 -c {shlex.quote(SCRIPT)} {shlex.quote(config_path)} "
        f"{shlex.quote(other or 'another-client')} {shlex.quote(json.dumps(list(victims)))}"
    )


def parse(stdout: str) -> ProbeResult:
    """The probe's JSON (its last line)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        data = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise BackupError(f"the append-only probe printed no result: {stdout[-300:]!r}") from None
    return ProbeResult(
        account=str(data.get("account", "")),
        objects={str(k): int(v) for k, v in (data.get("objects") or {}).items()},
        attempts=tuple(data.get("attempts") or ()),
        unchanged=data.get("unchanged") is True,
        silent=data.get("silent") is True,
    )
