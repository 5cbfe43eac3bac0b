"""Find copies of a private key on a host, whatever their form (C10: the internal CA's key
stays on the controller; issue #29, finding 9).

`SCRIPT` runs on a host as root (python3 and openssl, both on every host of the common
role). It walks the given roots, staying off the kernel's pseudo file systems, and reads
every file up to `MAX_BYTES`. In each it finds:

- every PEM private key block, whatever indents it (a key pasted into a YAML file) and
  however many a file holds (a bundle): openssl gives the SHA-256 of its public key (DER
  SubjectPublicKeyInfo), or the block is "unreadable" (encrypted, damaged);
- every OpenSSH private key block (`ssh-keygen -p` writes that form): the public key is in
  clear in its header, even when the private part is encrypted; its SHA-256 (the SSH wire
  blob) is compared;
- a binary file that openssl reads as a DER private key.

It prints one JSON document: {"keys": [{"path", "form", "sha256" or null}], "files": N}.
Compressed and encrypted containers (tar.gz, PKCS#12 with a password, restic's packs) are
not opened: the backups are searched by restoring them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shlex
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

# Key files are a few KiB; a bundle or a vars file holding one stays far under this.
MAX_BYTES = 1024 * 1024
# Where a copy could sit: the whole system but /usr's packages, /boot and the kernel's
# pseudo file systems (/proc, /sys, /dev but its shared memory).
ROOTS = (
    "/etc", "/root", "/home", "/srv", "/opt", "/var", "/usr/local", "/run", "/mnt", "/media",
    "/tmp", "/dev/shm",  # noqa: S108 (searched, never written)
)  # fmt: skip

SCRIPT = r"""
import base64, hashlib, json, os, re, stat, subprocess, sys

roots, limit = json.loads(sys.argv[1]), int(sys.argv[2])
PSEUDO = {"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "securityfs",
          "debugfs", "tracefs", "configfs", "fusectl", "bpf", "mqueue", "pstore"}
pseudo_mounts = set()
for line in open("/proc/self/mounts"):
    parts = line.split()
    if len(parts) > 2 and parts[2] in PSEUDO:
        pseudo_mounts.add(parts[1].replace("\\040", " "))
PEM = re.compile(rb"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY)-----(.*?)-----END \1-----", re.S)

def pem_sha256(block):
    done = subprocess.run(["openssl", "pkey", "-passin", "pass:", "-pubout", "-outform", "DER"],
                          input=block, capture_output=True)
    return hashlib.sha256(done.stdout).hexdigest() if done.returncode == 0 and done.stdout else None

def openssh_sha256(body):
    try:
        raw = base64.b64decode(re.sub(rb"\s+", b"", body), validate=True)
        magic = b"openssh-key-v1\0"
        if not raw.startswith(magic):
            return None
        at = len(magic)
        def take():
            nonlocal at
            size = int.from_bytes(raw[at:at + 4], "big")
            value = raw[at + 4:at + 4 + size]
            at += 4 + size
            return value
        take(); take(); take()  # cipher, kdf, kdf options
        at += 4  # number of keys
        return hashlib.sha256(take()).hexdigest()
    except (ValueError, IndexError):
        return None

keys, files = [], 0
def scan(path, data):
    text = data if b"PRIVATE KEY-----" in data else b""
    # Indented blocks (a key pasted into YAML): the indentation goes, the block stays.
    if text:
        text = re.sub(rb"(?m)^[ \t]+", b"", text)
    for match in PEM.finditer(text):
        kind, body = match.group(1), match.group(2)
        if kind == b"OPENSSH PRIVATE KEY":
            keys.append({"path": path, "form": "openssh", "sha256": openssh_sha256(body)})
        else:
            lines = [l.strip() for l in body.strip().splitlines()]
            block = (b"-----BEGIN " + kind + b"-----\n" + b"\n".join(lines)
                     + b"\n-----END " + kind + b"-----\n")
            keys.append({"path": path, "form": "pem", "sha256": pem_sha256(block)})
    if not text and data[:1] == b"\x30" and len(data) < 16384 and b"\0" in data:
        done = subprocess.run(["openssl", "pkey", "-inform", "DER", "-passin", "pass:",
                               "-pubout", "-outform", "DER"], input=data, capture_output=True)
        if done.returncode == 0 and done.stdout:
            keys.append({"path": path, "form": "der",
                         "sha256": hashlib.sha256(done.stdout).hexdigest()})

for root in roots:
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = [d for d in subdirs if os.path.join(directory, d) not in pseudo_mounts]
        for name in names:
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
                if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
                    continue
                with open(path, "rb") as handle:
                    data = handle.read()
            except OSError:
                continue
            files += 1
            scan(path, data)
print(json.dumps({"keys": keys, "files": files}))
"""


@dataclass(frozen=True)
class FoundKey:
    path: str
    form: str  # pem, openssh or der
    sha256: str | None  # None: unreadable (encrypted or damaged)


def command(roots: tuple[str, ...] = ROOTS, limit: int = MAX_BYTES) -> str:
    """The shell command that runs the scan on a host (as root)."""
    return f"python3 -c {shlex.quote(SCRIPT)} {shlex.quote(json.dumps(list(roots)))} {int(limit)}"


def parse(output: str) -> tuple[list[FoundKey], int]:
    """The keys the scan found, and how many files it read."""
    document: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    keys = [FoundKey(k["path"], k["form"], k.get("sha256")) for k in document["keys"]]
    return keys, int(document["files"])


def fingerprints(public_key: PublicKeyTypes) -> set[str]:
    """The SHA-256 values the scan prints for a key whose public half is `public_key`: of its
    DER SubjectPublicKeyInfo (PEM and DER keys) and of its SSH wire blob (OpenSSH keys)."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    found = {hashlib.sha256(der).hexdigest()}
    try:
        line = public_key.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
    except ValueError:  # a key type OpenSSH has no form for
        return found
    blob = base64.b64decode(line.split()[1])
    found.add(hashlib.sha256(blob).hexdigest())
    return found
