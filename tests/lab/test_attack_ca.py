"""Attack: the internal CA's key, stolen from a server (issue #29, finding 9; charter C10).

An attacker with root on a lab host looks for the private key of the deployment's internal
CA: in the host's files and in what the host backs up (a fresh snapshot, restored on the
host). It must be on neither: the key stays on the controller. And should it leak from the
controller anyway, a certificate it signs for a name outside the deployment's (a sibling of
its sites in the same domain included), for an address, or naming only an e-mail address or
a URI, is refused by a verifier that trusts the CA (critical name constraints); one for a
deployment name is accepted for a TLS server (the control that the signing itself works), and
refused for a TLS client or an e-mail signer (the CA's extended key usage).

    pytest -m lab tests/lab/test_attack_ca.py   (the deployed lab)
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from tests.lab.lab_shell import lab_ssh

from educloud.charter import keyscan
from educloud.lab.settings import LabPaths

pytestmark = pytest.mark.lab
HOSTS = ("edu1", "bak1")
BACKED_UP = "edu1"
RESTORE_DIR = "/root/attack-ca-restore"
# Names the CA must never vouch for: outside the deployment, lookalikes of its domain (a
# DNS name constraint matches whole labels), other names of its domain (the CA permits its
# sites' names, not their parent domain), addresses, and certificates naming only an e-mail
# address or a URI (which DNS constraints alone leave free).
FOREIGN = {
    "a public name": "DNS:www.impots.gouv.fr",
    "the domain as a label of another": "DNS:educloud.test.attacker.example",
    "a lookalike ending": "DNS:attackereducloud.test",
    "a sibling of the sites": "DNS:intranet.educloud.test",
    "the sites' parent domain": "DNS:educloud.test",
    "a lab address": "IP:198.18.0.10",
    "loopback": "IP:127.0.0.1",
    "an e-mail address only": "email:attacker@educloud.test",
    "a URI only": "URI:https://intranet.educloud.test/",
}
OWN = "DNS:cloud.educloud.test"  # one of the lab's sites (inventories/lab)
# What a thief writes into a certificate to use it beyond TLS servers.
EVERY_USAGE = "serverAuth,clientAuth,emailProtection"


def _ca() -> Path:
    return LabPaths.default().root / "ca"


@pytest.fixture(scope="module")
def ca_fingerprints() -> set[str]:
    """What the key scan prints for the CA's key, in each of its forms."""
    certificate = x509.load_pem_x509_certificate((_ca() / "ca.crt").read_bytes())
    return keyscan.fingerprints(certificate.public_key())


def _private_keys(host: str, roots: tuple[str, ...]) -> list[keyscan.FoundKey]:
    """Every private key readable by root under `roots` on `host`, in any form."""
    keys, _ = keyscan.parse(lab_ssh(host, keyscan.command(roots)))
    return keys


@pytest.mark.parametrize("host", HOSTS)
def test_the_ca_key_is_on_no_lab_host(host: str, ca_fingerprints: set[str]) -> None:
    keys = _private_keys(host, keyscan.ROOTS)
    # Control: the search sees keys at all (every host has its SSH host keys, edu1 its
    # site keys), so an empty answer is not a broken search.
    assert keys, f"{host}: the search found no private key at all"
    assert [k.path for k in keys if k.sha256 in ca_fingerprints] == [], (
        f"{host} holds the internal CA's private key"
    )
    assert not any(Path(k.path).name == "ca.key" for k in keys), f"{host} holds a ca.key"


def test_the_search_recognises_the_ca_key(ca_fingerprints: set[str]) -> None:
    """The controller's own CA key, scanned the same way, is recognised (so a copy on a host
    would be)."""
    answer = subprocess.run(
        ["bash", "-c", keyscan.command((str(_ca()),))],
        capture_output=True,
        text=True,
        check=True,
    )
    keys, _ = keyscan.parse(answer.stdout)
    assert [k for k in keys if k.sha256 in ca_fingerprints], keys


@pytest.fixture(scope="module")
def restored_backup() -> Iterator[str]:
    """A backup taken now on edu1 and restored there, as someone holding its key would."""
    lab_ssh(BACKED_UP, "systemctl start educloud-backup.service")
    lab_ssh(BACKED_UP, f"rm -rf {RESTORE_DIR} && mkdir -m 0700 {RESTORE_DIR}")
    try:
        lab_ssh(BACKED_UP, f"educloud-backup restore --target {RESTORE_DIR} >/dev/null")
        yield RESTORE_DIR
    finally:
        lab_ssh(BACKED_UP, f"rm -rf {RESTORE_DIR}")


def test_the_ca_key_is_not_in_the_backups(restored_backup: str, ca_fingerprints: set[str]) -> None:
    keys = _private_keys(BACKED_UP, (restored_backup,))
    restored = lab_ssh(BACKED_UP, f"find {restored_backup} -type f | wc -l").strip()
    assert int(restored) > 0, "the restored snapshot is empty"
    assert [k.path for k in keys if k.sha256 in ca_fingerprints] == [], (
        "the latest backup holds the internal CA's private key"
    )


def _sign(tmp_path: Path, san: str, usages: str = "serverAuth") -> Path:
    """A certificate for `san` and the extended key `usages`, signed with the CA's key as a
    thief would."""
    key, csr, crt = tmp_path / "leaf.key", tmp_path / "leaf.csr", tmp_path / "leaf.crt"
    subprocess.run(
        ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=attack"],
        capture_output=True, check=True,
    )  # fmt: skip
    extensions = tmp_path / "leaf.ext"
    extensions.write_text(f"subjectAltName={san}\nextendedKeyUsage={usages}\n")
    subprocess.run(
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(_ca() / "ca.crt"),
         "-CAkey", str(_ca() / "ca.key"), "-CAcreateserial", "-days", "1",
         "-extfile", str(extensions), "-out", str(crt)],
        capture_output=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    return crt


def _verifies(crt: Path, purpose: str = "sslserver") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "verify", "-CAfile", str(_ca() / "ca.crt"), "-purpose", purpose,
         str(crt)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_a_certificate_for_a_deployment_name_verifies(tmp_path: Path) -> None:
    answer = _verifies(_sign(tmp_path, OWN))
    assert answer.returncode == 0, f"control failed: {answer.stdout}{answer.stderr}"


@pytest.mark.parametrize("san", list(FOREIGN.values()), ids=list(FOREIGN))
def test_a_stolen_ca_key_cannot_vouch_for_another_name(tmp_path: Path, san: str) -> None:
    answer = _verifies(_sign(tmp_path, san))
    assert answer.returncode != 0, f"the CA vouches for {san}: no name constraint holds"
    # "permitted subtree violation" or "excluded subtree violation" (OpenSSL 3.0).
    assert "subtree violation" in (answer.stdout + answer.stderr), answer.stdout + answer.stderr


@pytest.mark.parametrize("purpose", ["sslclient", "smimesign"])
def test_a_stolen_ca_key_cannot_vouch_for_clients_or_signers(tmp_path: Path, purpose: str) -> None:
    """Even for a deployment name, with the usages written into the certificate itself: the
    CA (depth 1 of the chain) is for TLS servers only."""
    answer = _verifies(_sign(tmp_path, OWN, EVERY_USAGE), purpose)
    said = answer.stdout + answer.stderr
    assert answer.returncode != 0, f"the CA vouches for {OWN} as {purpose}: {said}"
    assert "at 1 depth lookup: unsuitable certificate purpose" in said, said
