"""OpenSSH public key lines ("TYPE BASE64 [comment]"), read the way sshd reads them: used
for a provider's host key (educloud init) and for the lab's SFTP account (its
authorized_keys)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection

# Host keys a server offers (what a provider pins); user keys may also be FIDO keys.
HOST_KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)
USER_KEY_TYPES = (
    *HOST_KEY_TYPES,
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


def parse_public_key(line: str, types: Collection[str] = USER_KEY_TYPES) -> tuple[str, str]:
    """(type, base64 blob) of one public key line; ValueError naming what is wrong (the
    key's text is public: quoting its start is safe)."""
    text = line.strip()  # a .pub file's trailing newline
    if "\n" in text or "\r" in text or "\0" in text:
        raise ValueError("a public key is one line")
    fields = text.split()
    if len(fields) < 2 or fields[0] not in types:
        raise ValueError(
            f"not an OpenSSH public key line ('TYPE BASE64 [comment]', TYPE one of "
            f"{', '.join(sorted(types))}): {text[:60]!r}"
        )
    key_type, blob = fields[0], fields[1]
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"public key {key_type}: its key is not base64") from error
    # The blob starts with its type, as an SSH string (4-byte length, then the name).
    name = key_type.encode()
    if raw[:4] != len(name).to_bytes(4, "big") or raw[4 : 4 + len(name)] != name:
        raise ValueError(f"public key {key_type}: its key is not of that type")
    return key_type, blob
