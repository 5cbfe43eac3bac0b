"""The nextcloud role refuses a release archive whose SHA-256 or signature is wrong.

Nextcloud's real archive cannot be downloaded here; these archives are deliberately wrong,
so the role must stop at its check, with a message that says why, and leave the host as it
was (no archive kept, no code unpacked).
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.lab.lab_shell import lab_playbook, lab_ssh

from educloud.lab.settings import LabPaths

pytestmark = pytest.mark.lab
HOST = "edu1"
PLAYBOOK = Path(__file__).parent / "playbooks" / "nextcloud_install_step.yml"
ARCHIVE_NAME = "nextcloud-refused-by-test.tar.bz2"


def _ssh(command: str) -> str:
    return lab_ssh(HOST, command).strip()


def _install_step(archive: str, sha256: str, **extra: str) -> subprocess.CompletedProcess[str]:
    variables = {"nextcloud_archive_url": archive, "nextcloud_archive_sha256": sha256, **extra}
    return lab_playbook(PLAYBOOK, HOST, variables)


def _host_untouched() -> None:
    assert _ssh("test -e /var/www/nextcloud/occ && echo unpacked || echo absent") == "absent"
    kept = _ssh(f"ls /var/lib/nextcloud/archives/ | grep -c {ARCHIVE_NAME} || true")
    assert kept == "0", "a refused archive was kept on the host"


@pytest.fixture
def wrong_archive(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    archive = tmp_path / ARCHIVE_NAME
    archive.write_bytes(b"not a Nextcloud release")
    yield archive, hashlib.sha256(b"the release that was announced").hexdigest()


def test_local_archive_with_another_checksum_is_refused(
    lab_hosts: object, wrong_archive: tuple[Path, str]
) -> None:
    archive, announced = wrong_archive
    result = _install_step(str(archive), announced)
    assert result.returncode != 0
    assert f"differs from the expected {announced}" in result.stdout
    assert "Nothing was copied or unpacked" in result.stdout
    _host_untouched()


def test_missing_local_archive_is_refused(lab_hosts: object, tmp_path: Path) -> None:
    result = _install_step(str(tmp_path / ARCHIVE_NAME), "0" * 64)
    assert result.returncode != 0
    assert "no such file on the controller" in result.stdout
    _host_untouched()


def test_downloaded_archive_with_another_checksum_is_refused(
    lab_hosts: object, wrong_archive: tuple[Path, str]
) -> None:
    # Served by the lab's artifact server (the host side of the lab), like a local mirror.
    archive, announced = wrong_archive
    served = LabPaths.default().artifacts / ARCHIVE_NAME
    served.write_bytes(archive.read_bytes())
    try:
        result = _install_step(f"http://198.18.0.1:8088/{ARCHIVE_NAME}", announced)
    finally:
        served.unlink()
    assert result.returncode != 0
    assert "checksum" in result.stdout.lower()
    _host_untouched()


def _gpg(home: Path, *args: str) -> str:
    result = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--yes", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout


@pytest.fixture
def signing_key(tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    """A throw-away signing key: its home, its exported public key and its fingerprint.

    The role keeps the key it was given on the host: removed afterwards, so that the next
    run with Nextcloud's own key starts clean.
    """
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    _gpg(
        home,
        "--passphrase",
        "",
        "--quick-gen-key",
        "educloud test <t@educloud.test>",
        "ed25519",
        "sign",
        "never",
    )
    listing = _gpg(home, "--with-colons", "--list-keys")
    fingerprint = next(
        line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
    )
    public_key = tmp_path / "key.asc"
    _gpg(home, "--armor", "--output", str(public_key), "--export", fingerprint)
    try:
        yield home, public_key, fingerprint
    finally:
        # gpg started an agent for this home; it would outlive the test run.
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
            capture_output=True,
            check=False,
            timeout=60,
        )
    _ssh("cd /var/lib/nextcloud/archives && rm -f nextcloud.asc nextcloud-keyring.gpg")


def _signed_archive(tmp_path: Path, home: Path, signed: bytes) -> tuple[Path, Path, str]:
    """A checksummed archive, and a signature made over `signed` (the archive or not)."""
    archive = tmp_path / ARCHIVE_NAME
    archive.write_bytes(b"not a Nextcloud release")
    other = tmp_path / "signed-content"
    other.write_bytes(signed)
    signature = tmp_path / f"{ARCHIVE_NAME}.asc"
    _gpg(home, "--armor", "--output", str(signature), "--detach-sign", str(other))
    return archive, signature, hashlib.sha256(archive.read_bytes()).hexdigest()


def test_key_other_than_nextcloud_release_key_is_refused(
    lab_hosts: object, tmp_path: Path, signing_key: tuple[Path, Path, str]
) -> None:
    home, public_key, _ = signing_key
    archive, signature, sha256 = _signed_archive(tmp_path, home, b"not a Nextcloud release")
    result = _install_step(
        str(archive),
        sha256,
        nextcloud_archive_signature_url=str(signature),
        nextcloud_gpg_key_src=str(public_key),
    )
    assert result.returncode != 0
    assert "is not the key 28806A878AE423A28372792ED75899B9A724937A" in result.stdout
    _host_untouched()


def test_signature_of_other_content_is_refused(
    lab_hosts: object, tmp_path: Path, signing_key: tuple[Path, Path, str]
) -> None:
    home, public_key, fingerprint = signing_key
    archive, signature, sha256 = _signed_archive(tmp_path, home, b"another file")
    result = _install_step(
        str(archive),
        sha256,
        nextcloud_archive_signature_url=str(signature),
        nextcloud_gpg_key_src=str(public_key),
        nextcloud_gpg_fingerprint=fingerprint,
    )
    assert result.returncode != 0
    assert "the GPG signature does not verify" in result.stdout
    _host_untouched()
