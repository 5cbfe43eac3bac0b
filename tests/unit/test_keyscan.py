"""The key scan finds a private key in every form a copy realistically takes (#29 finding 9).

The scan's script runs here, on a tree of files holding one RSA key in each form (written
by openssl and ssh-keygen, as an operator would), beside another key and a certificate.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from educloud.charter import keyscan


def _run(*argv: str, cwd: Path) -> None:
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, rsa.RSAPrivateKey]:
    root = tmp_path_factory.mktemp("scan")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    traditional = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (root / "ca.key").write_bytes(pkcs8)
    (root / "renamed.txt").write_bytes(traditional)
    indented = b"".join(b"    " + line + b"\n" for line in pkcs8.splitlines())
    (root / "vars.yml").write_bytes(b"ca_key: |\n" + indented)
    (root / "bundle.pem").write_bytes(other + pkcs8)
    (root / "key.der").write_bytes(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (root / "encrypted.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret-passphrase"),
        )
    )
    (root / "sub").mkdir()
    (root / "sub/id_openssh").write_bytes(traditional)
    (root / "sub/id_openssh").chmod(0o600)
    _run("ssh-keygen", "-p", "-N", "", "-f", "sub/id_openssh", cwd=root)  # OpenSSH form
    (root / "sub/id_openssh_locked").write_bytes((root / "sub/id_openssh").read_bytes())
    (root / "sub/id_openssh_locked").chmod(0o600)
    _run("ssh-keygen", "-p", "-P", "", "-N", "locked-1234", "-f", "sub/id_openssh_locked",
         cwd=root)  # fmt: skip
    (root / "other.key").write_bytes(other)
    return root, key


@pytest.fixture(scope="module")
def found(tree: tuple[Path, rsa.RSAPrivateKey]) -> tuple[dict[str, set[str | None]], int]:
    root, _ = tree
    answer = subprocess.run(
        ["bash", "-c", keyscan.command((str(root),))],
        capture_output=True,
        text=True,
        check=True,
    )
    keys, files = keyscan.parse(answer.stdout)
    by_file: dict[str, set[str | None]] = {}
    for key in keys:
        by_file.setdefault(Path(key.path).name, set()).add(key.sha256)
    return by_file, files


@pytest.mark.parametrize(
    "name",
    ["ca.key", "renamed.txt", "vars.yml", "bundle.pem", "key.der", "id_openssh",
     "id_openssh_locked"],
    ids=["PKCS#8 PEM", "traditional PEM, renamed", "indented in YAML", "second of a bundle",
         "DER", "OpenSSH", "OpenSSH with a passphrase"],
)  # fmt: skip
def test_every_form_of_the_key_is_recognised(
    tree: tuple[Path, rsa.RSAPrivateKey],
    found: tuple[dict[str, set[str | None]], int],
    name: str,
) -> None:
    _, key = tree
    assert found[0].get(name, set()) & keyscan.fingerprints(key.public_key()), found[0].get(name)


def test_an_encrypted_pem_key_is_listed_as_unreadable(
    found: tuple[dict[str, set[str | None]], int],
) -> None:
    assert found[0]["encrypted.pem"] == {None}


def test_another_key_is_not_taken_for_it(
    tree: tuple[Path, rsa.RSAPrivateKey], found: tuple[dict[str, set[str | None]], int]
) -> None:
    _, key = tree
    assert found[0]["other.key"]
    assert not found[0]["other.key"] & keyscan.fingerprints(key.public_key())
    assert found[1] >= 9
