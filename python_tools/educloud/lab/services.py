"""Host-side services on the lab bridge: apt proxy, artifact server, SMTP sink, and the decoy.

- apt-cacher-ng forwards Debian package requests to the host's own mirror and caches them;
- a read-only HTTP server publishes the artifact directory (release archives such as
  Keycloak's, fetched on the host from a registry this machine reaches);
- the SMTP sink is the lab's mail relay (policies/egress.yml, purpose mail_relay): it files
  every message in a maildir under the lab directory and delivers nothing (smtp_sink.py);
- the decoy is a lab address that answers HTTP but that no egress policy lists, so the
  charter checks can prove that egress filtering refuses it;
- the backup provider (issue #28, item 5), storage that no role manages: an SFTP-only
  account (OpenSSH's sshd, unpacked from Debian's packages, never installed) and S3-compatible
  object storage over HTTPS (s3proxy on a filesystem). Both run as unprivileged accounts of
  their own, under LabPaths.provider (beside the lab directory, which they cannot traverse).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from educloud import sshkeys
from educloud.commands import run
from educloud.errors import EducloudError
from educloud.lab import artifacts
from educloud.lab.machine import new_ed25519_key, process_matches
from educloud.lab.preflight import find_tool
from educloud.lab.settings import (
    APT_PROXY_PORT,
    ARTIFACT_PORT,
    BRIDGE_ADDRESS,
    DECOY_ADDRESS,
    DECOY_PORT,
    S3_PORT,
    SFTP_PORT,
    SMTP_SINK_PORT,
    LabPaths,
)


@dataclass(frozen=True)
class Service:
    name: str
    address: str
    port: int

    def pidfile(self, paths: LabPaths) -> Path:
        return paths.run / f"{self.name}.pid"

    @property
    def marker(self) -> str:
        """What its command line contains: the program, or the address it serves."""
        if self.name in MARKERS:
            return MARKERS[self.name]
        return self.address


# Services sharing an address are told apart by their program (sshd: by its config file).
SSHD_CONFIG_NAME = "educloud-lab-sshd_config"
MARKERS = {
    "apt-cacher-ng": "apt-cacher-ng",
    "smtp-sink": "educloud.lab.smtp_sink",
    "sftp": SSHD_CONFIG_NAME,
    "s3": "s3proxy",
}


APT_PROXY = Service("apt-cacher-ng", str(BRIDGE_ADDRESS), APT_PROXY_PORT)
ARTIFACTS = Service("artifacts", str(BRIDGE_ADDRESS), ARTIFACT_PORT)
SMTP_SINK = Service("smtp-sink", str(BRIDGE_ADDRESS), SMTP_SINK_PORT)
DECOY = Service("decoy", str(DECOY_ADDRESS), DECOY_PORT)
SFTP = Service("sftp", str(BRIDGE_ADDRESS), SFTP_PORT)
S3 = Service("s3", str(BRIDGE_ADDRESS), S3_PORT)
ALL_SERVICES = (APT_PROXY, ARTIFACTS, SMTP_SINK, DECOY, SFTP, S3)


def read_pid(pidfile: Path, marker: str) -> int | None:
    """The service's pid if it is still that service (pids of old sessions get reused)."""
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if process_matches(pid, marker) else None


def is_running(service: Service, paths: LabPaths) -> bool:
    return read_pid(service.pidfile(paths), service.marker) is not None


def _wait_port(service: Service, timeout: float = 20.0, paths: LabPaths | None = None) -> None:
    """Wait until the service answers; with paths, give up as soon as its process is gone."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if paths is not None and not is_running(service, paths):
            raise EducloudError(
                f"lab service {service.name} stopped while starting; "
                f"see {paths.logs}/{service.name}.log"
            )
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((service.address, service.port)) == 0:
                return
        time.sleep(0.1)
    raise EducloudError(
        f"lab service {service.name} did not answer on {service.address}:{service.port} "
        f"within {timeout:.0f} s; see {LabPaths.default().logs}/{service.name}.log"
    )


def _acng_config(paths: LabPaths, mirror: str) -> Path:
    conf = paths.apt_cache / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    (paths.apt_cache / "cache").mkdir(exist_ok=True)
    (paths.apt_cache / "log").mkdir(exist_ok=True)
    (conf / "backends_debian").write_text(mirror + "\n")
    (conf / "acng.conf").write_text(
        "# managed by educloud lab\n"
        f"CacheDir: {paths.apt_cache / 'cache'}\n"
        f"LogDir: {paths.apt_cache / 'log'}\n"
        "SupportDir: /usr/lib/apt-cacher-ng\n"
        f"Port: {APT_PROXY_PORT}\n"
        f"BindAddress: {BRIDGE_ADDRESS}\n"
        f"PidFile: {APT_PROXY.pidfile(paths)}\n"
        "ForeGround: 0\n"
        # Only Debian's archives, forwarded to the host's own mirror.
        f"Remap-debrep: file:deb_mirror*.gz /debian ; file:{conf / 'backends_debian'}\n"
        "Remap-secdeb: security.debian.org security.debian.org/debian-security "
        "deb.debian.org/debian-security /debian-security ; "
        "deb.debian.org/debian-security security.debian.org\n"
        "ReportPage: acng-report.html\n"
        "ExThreshold: 4\n"
        "PassThroughPattern: ^$\n"
    )
    return conf


def _start_python_server(service: Service, paths: LabPaths, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    arguments = ["--bind", service.address, "--directory", str(directory)]
    _start_python_module(service, paths, ["http.server", str(service.port), *arguments])


def _start_python_module(service: Service, paths: LabPaths, module_args: list[str]) -> None:
    log = (paths.logs / f"{service.name}.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", *module_args],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    service.pidfile(paths).write_text(f"{process.pid}\n")


def start_all(paths: LabPaths, mirror: str) -> None:
    """Start each service that is not running yet (idempotent)."""
    paths.run.mkdir(parents=True, exist_ok=True)
    paths.logs.mkdir(parents=True, exist_ok=True)
    if not is_running(APT_PROXY, paths):
        conf = _acng_config(paths, mirror)
        binary = find_tool("apt-cacher-ng") or "apt-cacher-ng"
        run([binary, "-c", str(conf)], what="starting apt-cacher-ng for the lab")
    _wait_port(APT_PROXY)
    if not is_running(ARTIFACTS, paths):
        _start_python_server(ARTIFACTS, paths, paths.artifacts)
    _wait_port(ARTIFACTS)
    if not is_running(SMTP_SINK, paths):
        arguments = ["--bind", SMTP_SINK.address, "--port", str(SMTP_SINK.port)]
        arguments += ["--maildir", str(paths.mail)]
        _start_python_module(SMTP_SINK, paths, ["educloud.lab.smtp_sink", *arguments])
    _wait_port(SMTP_SINK)
    if not is_running(DECOY, paths):
        decoy_dir = paths.run / "decoy"
        decoy_dir.mkdir(exist_ok=True)
        (decoy_dir / "index.html").write_text("educloud lab decoy: no server may reach this\n")
        _start_python_server(DECOY, paths, decoy_dir)
    _wait_port(DECOY)
    start_sftp(paths)
    start_s3(paths)


def stop(service: Service, paths: LabPaths, timeout: float = 10.0) -> None:
    """Stop one service: SIGTERM, then SIGKILL after timeout (idempotent)."""
    pidfile = service.pidfile(paths)
    pid = read_pid(pidfile, service.marker)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and read_pid(pidfile, service.marker) is not None:
            time.sleep(0.1)
        if read_pid(pidfile, service.marker) is not None:
            os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)


def stop_all(paths: LabPaths, timeout: float = 10.0) -> None:
    for service in ALL_SERVICES:
        stop(service, paths, timeout)


# --- The backup provider -------------------------------------------------------------------
# Storage at a hosting provider, which the roles do not manage (issue #28, item 5): the
# lab's stand-ins for "an SFTP account at a provider" and "S3-compatible object storage".
# The pure parts (layouts, config texts, keys and certificates) are apart from the process
# starting, so that the unit tests need neither root nor the bridge.

SFTP_ACCOUNT = "educloud-lab-sftp"
S3_ACCOUNT = "educloud-lab-s3"
NOLOGIN = "/usr/sbin/nologin"
OPENSSH_PACKAGES = ("openssh-server", "openssh-sftp-server")
S3PROXY_PREFIX = "s3proxy-"
# The environment of the providers' servers: nothing of the caller's.
SERVER_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
# Public key types an authorized_keys line may carry.
KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "ssh-rsa",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
# The endpoint's certificate is renewed (by a new CA) when it has less than this left.
CERTIFICATE_DAYS = 3650
RENEW_BEFORE = datetime.timedelta(days=30)


@dataclass(frozen=True)
class SftpLayout:
    """The SFTP provider's files, under LabPaths.provider / "sftp"."""

    root: Path

    @property
    def openssh(self) -> Path:
        """Debian's openssh-server and openssh-sftp-server, unpacked (never installed)."""
        return self.root / "openssh"

    @property
    def sshd(self) -> Path:
        return self.openssh / "usr" / "sbin" / "sshd"

    @property
    def moduli(self) -> Path:
        return self.openssh / "etc" / "ssh" / "moduli"

    @property
    def config(self) -> Path:
        return self.root / SSHD_CONFIG_NAME

    @property
    def host_key(self) -> Path:
        return self.root / "ssh_host_ed25519_key"

    @property
    def authorized_keys(self) -> Path:
        return self.root / "authorized_keys"

    @property
    def run(self) -> Path:
        """The directory of sshd's own pid file (the account's: sshd runs as it)."""
        return self.root / "run"

    @property
    def home(self) -> Path:
        """The account's home directory."""
        return self.root / "home"

    @property
    def repos(self) -> Path:
        """Where the repositories go: one directory per host."""
        return self.home / "repos"


@dataclass(frozen=True)
class S3Layout:
    """The S3 provider's files, under LabPaths.provider / "s3"."""

    root: Path

    @property
    def home(self) -> Path:
        """The account's home directory, and Java's temporary directory."""
        return self.root / "home"

    @property
    def data(self) -> Path:
        """The filesystem backend: a directory per bucket."""
        return self.root / "data"

    @property
    def ca_certificate(self) -> Path:
        """The PEM of the CA that signed the endpoint's certificate (its key is not kept)."""
        return self.root / "ca.crt"

    @property
    def certificate(self) -> Path:
        """The endpoint's certificate (PEM), also in the keystore."""
        return self.root / "server.crt"

    @property
    def keystore(self) -> Path:
        """PKCS#12: the endpoint's key and certificate chain, for Jetty."""
        return self.root / "keystore.p12"

    @property
    def keystore_password(self) -> Path:
        return self.root / "keystore-password"

    @property
    def credentials(self) -> Path:
        """AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=... lines (root's, 0600)."""
        return self.root / "credentials"

    @property
    def properties(self) -> Path:
        return self.root / "s3proxy.properties"


def sftp_layout(paths: LabPaths) -> SftpLayout:
    return SftpLayout(paths.provider / "sftp")


def s3_layout(paths: LabPaths) -> S3Layout:
    return S3Layout(paths.provider / "s3")


def sftp_repository_path(paths: LabPaths, host: str) -> Path:
    """A host's restic repository on the SFTP account: an absolute path (no chroot)."""
    return sftp_layout(paths).repos / host


def s3_repository(bucket: str, prefix: str) -> str:
    """A restic repository in the S3 storage (path-style: the endpoint is an address)."""
    return f"s3:https://{BRIDGE_ADDRESS}:{S3_PORT}/{bucket}/{prefix}"


def s3_object_directory(paths: LabPaths, bucket: str, prefix: str) -> Path:
    """Where the filesystem backend keeps the objects under a prefix: a file per object."""
    return s3_layout(paths).data / bucket / prefix


def sshd_config_text(layout: SftpLayout, account: str = SFTP_ACCOUNT) -> str:
    """sshd_config of the SFTP account: public keys only, SFTP only, nothing forwarded."""
    return (
        "# managed by educloud lab: the backup provider's SFTP account (no role manages it)\n"
        f"ListenAddress {BRIDGE_ADDRESS}:{SFTP_PORT}\n"
        f"HostKey {layout.host_key}\n"
        f"PidFile {layout.run / 'sshd.pid'}\n"
        f"ModuliFile {layout.moduli}\n"
        f"AuthorizedKeysFile {layout.authorized_keys}\n"
        "AuthorizedPrincipalsFile none\n"
        "AuthenticationMethods publickey\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "HostbasedAuthentication no\n"
        "UsePAM no\n"
        "PermitRootLogin no\n"
        f"AllowUsers {account}\n"
        # sshd runs as the account itself, unprivileged: it cannot chroot, so the account
        # sees the host's files as that account does; repositories take absolute paths.
        "Subsystem sftp internal-sftp\n"
        "ForceCommand internal-sftp\n"
        "DisableForwarding yes\n"
        "PermitTTY no\n"
        "PermitUserRC no\n"
        "PermitUserEnvironment no\n"
        "PrintMotd no\n"
        "PrintLastLog no\n"
        "StrictModes yes\n"
        "MaxAuthTries 3\n"
        "LoginGraceTime 30\n"
        "LogLevel VERBOSE\n"
    )


def parse_public_key(line: str) -> tuple[str, str]:
    """(type, base64 blob) of an OpenSSH public key line "TYPE BASE64 [comment]"."""
    try:
        return sshkeys.parse_public_key(line, KEY_TYPES)
    except ValueError as error:
        raise EducloudError(str(error)) from error


def add_authorized_key(path: Path, line: str) -> bool:
    """Add a public key line to an authorized_keys file; False when the key is there."""
    key = parse_public_key(line)
    existing = path.read_text(encoding="ascii").splitlines() if path.exists() else []
    if any(_key_of(present) == key for present in existing):
        return False
    text = "".join(f"{entry}\n" for entry in [*existing, " ".join(line.split())])
    _write_atomically(path, text.encode("ascii"), 0o600)
    return True


def remove_authorized_key(path: Path, line: str) -> bool:
    """Take a public key out of an authorized_keys file; False when it was not there."""
    key = parse_public_key(line)
    if not path.exists():
        return False
    existing = path.read_text(encoding="ascii").splitlines()
    kept = [entry for entry in existing if _key_of(entry) != key]
    if len(kept) == len(existing):
        return False
    _write_atomically(path, "".join(f"{entry}\n" for entry in kept).encode("ascii"), 0o600)
    return True


def _key_of(line: str) -> tuple[str, str] | None:
    try:
        return parse_public_key(line)
    except EducloudError:
        return None


def s3proxy_properties_text(
    layout: S3Layout, identity: str, credential: str, keystore_password: str
) -> str:
    """s3proxy's properties: HTTPS only (no s3proxy.endpoint), signed requests only."""
    values = {
        "s3proxy.secure-endpoint": f"https://{BRIDGE_ADDRESS}:{S3_PORT}",
        "s3proxy.authorization": "aws-v2-or-v4",
        "s3proxy.identity": identity,
        "s3proxy.credential": credential,
        "s3proxy.keystore-path": str(layout.keystore),
        "s3proxy.keystore-password": keystore_password,
        "jclouds.provider": "filesystem",
        "jclouds.filesystem.basedir": str(layout.data),
    }
    for key, value in values.items():
        # Java's properties syntax gives a backslash a meaning; nothing here needs one.
        if not value or any(c in value for c in "\\\n\r"):
            raise EducloudError(f"s3proxy property {key}: empty, or a backslash or line break")
    body = "".join(f"{key}={value}\n" for key, value in values.items())
    return (
        "# managed by educloud lab: the backup provider's S3 storage (no role manages it)\n" + body
    )


def credentials_text(access_key_id: str, secret: str) -> str:
    return f"AWS_ACCESS_KEY_ID={access_key_id}\nAWS_SECRET_ACCESS_KEY={secret}\n"


def parse_credentials(text: str) -> tuple[str, str]:
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    try:
        return values["AWS_ACCESS_KEY_ID"], values["AWS_SECRET_ACCESS_KEY"]
    except KeyError as exc:
        raise EducloudError(f"S3 credentials: {exc.args[0]} is missing") from exc


def new_credentials() -> tuple[str, str]:
    """An access key id and a secret, in the shape AWS gives them (20 and 40 characters)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    access = "ECLAB" + "".join(secrets.choice(alphabet) for _ in range(15))
    return access, secrets.token_urlsafe(30)


def make_certificates(
    address: ipaddress.IPv4Address = BRIDGE_ADDRESS,
    days: int = CERTIFICATE_DAYS,
    now: datetime.datetime | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, x509.Certificate]:
    """(CA certificate, endpoint key, endpoint certificate) for an endpoint named by address.

    The CA signs this one certificate and its key is then dropped (a new certificate comes
    with a new CA). The lab's own CA cannot sign it: its name constraints exclude every IP
    address (docs/decisions/0012-internal-ca-on-controller.md), and Go's TLS (restic) holds
    a certificate to them. This CA permits only the endpoint's address.
    """
    start = (now or datetime.datetime.now(datetime.UTC)) - datetime.timedelta(minutes=5)
    end = start + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "educloud lab backup provider"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"educloud lab backup provider CA {address}"),
        ]
    )
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(
            x509.NameConstraints(
                permitted_subtrees=[x509.IPAddress(ipaddress.IPv4Network(f"{address}/32"))],
                excluded_subtrees=None,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(address))]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(address)]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return ca_cert, key, cert


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def keystore_bytes(
    key: ec.EllipticCurvePrivateKey,
    cert: x509.Certificate,
    ca_cert: x509.Certificate,
    password: str,
) -> bytes:
    """A PKCS#12 keystore (Java 17 reads its PBES2/AES encryption) with the key and chain."""
    return pkcs12.serialize_key_and_certificates(
        b"s3proxy",
        key,
        cert,
        [ca_cert],
        serialization.BestAvailableEncryption(password.encode()),
    )


def needs_new_certificate(layout: S3Layout, now: datetime.datetime | None = None) -> bool:
    """True when a file of the endpoint's TLS is missing or its certificate ends soon."""
    files = (layout.ca_certificate, layout.certificate, layout.keystore, layout.keystore_password)
    if not all(path.is_file() for path in files):
        return True
    cert = x509.load_pem_x509_certificate(layout.certificate.read_bytes())
    moment = now or datetime.datetime.now(datetime.UTC)
    return cert.not_valid_after_utc - moment < RENEW_BEFORE


# --- Public reads, for the tests and the lab inventory ---------------------------------


def sftp_authorize(paths: LabPaths, public_key_line: str) -> bool:
    """Let a key log in to the SFTP account (idempotent); True when it was added now."""
    layout = sftp_layout(paths)
    layout.root.mkdir(parents=True, exist_ok=True)
    added = add_authorized_key(layout.authorized_keys, public_key_line)
    ids = _account_ids(SFTP_ACCOUNT)
    if ids is not None:
        os.chown(layout.authorized_keys, *ids)
    return added


def sftp_revoke(paths: LabPaths, public_key_line: str) -> bool:
    """Take a key off the SFTP account (idempotent); True when it was there."""
    layout = sftp_layout(paths)
    removed = remove_authorized_key(layout.authorized_keys, public_key_line)
    ids = _account_ids(SFTP_ACCOUNT)
    if removed and ids is not None:
        os.chown(layout.authorized_keys, *ids)
    return removed


def sftp_host_key(paths: LabPaths) -> str:
    """The SFTP server's public host key, "ssh-ed25519 AAAA..." (no comment), to pin."""
    path = sftp_layout(paths).host_key.with_suffix(".pub")
    try:
        fields = path.read_text(encoding="ascii").split()
    except FileNotFoundError as exc:
        raise EducloudError(f"{path}: no SFTP host key yet (the lab's services make it)") from exc
    return f"{fields[0]} {fields[1]}"


def sftp_known_hosts_line(paths: LabPaths) -> str:
    """The known_hosts line that pins the SFTP server (its port is not 22)."""
    return f"[{BRIDGE_ADDRESS}]:{SFTP_PORT} {sftp_host_key(paths)}"


def s3_credentials(paths: LabPaths) -> tuple[str, str]:
    """(access key id, secret access key) of the S3 storage."""
    path = s3_layout(paths).credentials
    try:
        return parse_credentials(path.read_text(encoding="ascii"))
    except FileNotFoundError as exc:
        raise EducloudError(
            f"{path}: no S3 credentials yet (the lab's services make them)"
        ) from exc


def s3_ca_certificate(paths: LabPaths) -> str:
    """The PEM of the CA that signed the S3 endpoint's certificate (not the lab's CA)."""
    path = s3_layout(paths).ca_certificate
    try:
        return path.read_text(encoding="ascii")
    except FileNotFoundError as exc:
        raise EducloudError(f"{path}: no S3 CA yet (the lab's services make it)") from exc


# --- Files and accounts (root) -------------------------------------------------------------


def _write_atomically(
    path: Path, data: bytes, mode: int, owner: tuple[int, int] | None = None
) -> None:
    """Write a file whole (a reader sees the old or the new), with its mode and owner."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        if owner is not None:
            os.chown(tmp, *owner)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _account_ids(name: str) -> tuple[int, int] | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def ensure_account(name: str, home: Path, what: str) -> tuple[int, int]:
    """A system account of the host for a provider's server (uid, gid); made if missing."""
    ids = _account_ids(name)
    if ids is None:
        run(
            [
                find_tool("useradd") or "useradd",
                "--system",
                "--home-dir",
                str(home),
                "--shell",
                NOLOGIN,
                "--no-create-home",
                "--user-group",
                "--comment",
                f"educloud lab {what}",  # no colon: the passwd separator
                name,
            ],
            what=f"creating the account {name}",
        )
        ids = _account_ids(name)
        if ids is None:
            raise EducloudError(f"useradd made no account {name}")
    return ids


def _directory(path: Path, mode: int, owner: tuple[int, int] | None = None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    if owner is not None:
        os.chown(path, *owner)


def _own(path: Path, mode: int, owner: tuple[int, int]) -> None:
    os.chown(path, *owner)
    path.chmod(mode)


def _run_in(argv: Sequence[str], cwd: Path, what: str) -> None:
    result = subprocess.run(
        list(argv), cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )
    if result.returncode != 0:
        tail = " / ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise EducloudError(f"{what} failed: {tail or f'exit status {result.returncode}'}")


def prepare_openssh(paths: LabPaths) -> Path:
    """Unpack Debian's sshd under the provider's directory, once; returns its absolute path.

    Installing openssh-server would start a system sshd on port 22: the packages are
    downloaded and unpacked instead (their programs use the host's libraries).
    """
    layout = sftp_layout(paths)
    if layout.sshd.is_file():
        return layout.sshd
    _directory(paths.provider, 0o755)  # the accounts traverse it, whatever root's umask
    _directory(layout.root, 0o755)
    with tempfile.TemporaryDirectory(dir=layout.root, prefix=".openssh-") as tmp:
        work = Path(tmp)
        # As root apt would hand the download to its _apt user, which cannot write here.
        download = ["apt-get", "-q", "-o", "APT::Sandbox::User=root", "download"]
        try:
            _run_in([*download, *OPENSSH_PACKAGES], work, "downloading Debian's OpenSSH server")
        except EducloudError:
            # A machine whose package lists were never fetched (or were cleaned) knows no
            # candidate: fetch them once, then try again.
            run(["apt-get", "-q", "update"], what="updating the package lists")
            _run_in([*download, *OPENSSH_PACKAGES], work, "downloading Debian's OpenSSH server")
        unpacked = work / "root"
        for deb in sorted(work.glob("*.deb")):
            run(["dpkg-deb", "-x", str(deb), str(unpacked)], what=f"unpacking {deb.name}")
        sshd = unpacked / "usr" / "sbin" / "sshd"
        version = subprocess.run(
            [str(sshd), "-V"], capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
        )
        if "OpenSSH" not in version.stderr + version.stdout:
            raise EducloudError(f"the unpacked sshd does not run here: {version.stderr.strip()}")
        unpacked.chmod(0o755)  # the account must traverse it; the rest keeps dpkg's modes
        unpacked.rename(layout.openssh)
    return layout.sshd


def _log(paths: LabPaths, service: Service) -> int:
    paths.logs.mkdir(parents=True, exist_ok=True)
    return os.open(
        paths.logs / f"{service.name}.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640
    )


def _start_as(
    service: Service, paths: LabPaths, argv: list[str], owner: tuple[int, int], cwd: Path
) -> None:
    """Start a provider's server as its account, in a session of its own, logging to logs/."""
    log = _log(paths, service)
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=cwd,
            env=SERVER_ENV,
            user=owner[0],
            group=owner[1],
            extra_groups=[],
            umask=0o077,
            start_new_session=True,
        )
    finally:
        os.close(log)
    service.pidfile(paths).write_text(f"{process.pid}\n")


def _prepare_sftp(paths: LabPaths) -> tuple[Path, tuple[int, int]]:
    layout = sftp_layout(paths)
    sshd = prepare_openssh(paths)
    owner = ensure_account(SFTP_ACCOUNT, layout.home, "backup provider SFTP")
    _directory(paths.provider, 0o755)
    _directory(layout.root, 0o755)
    _directory(layout.run, 0o700, owner)
    _directory(layout.home, 0o700, owner)
    _directory(layout.repos, 0o700, owner)
    if not layout.host_key.exists():
        new_ed25519_key(layout.host_key, f"{SFTP_ACCOUNT}@lab", "making the SFTP server's host key")
    _own(layout.host_key, 0o600, owner)
    if not layout.authorized_keys.exists():
        _write_atomically(layout.authorized_keys, b"", 0o600, owner)
    _own(layout.authorized_keys, 0o600, owner)
    _write_atomically(layout.config, sshd_config_text(layout).encode(), 0o644)
    check = subprocess.run(
        [str(sshd), "-t", "-f", str(layout.config)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=SERVER_ENV,
        user=owner[0],
        group=owner[1],
        extra_groups=[],
        check=False,
    )
    if check.returncode != 0:
        raise EducloudError(f"{layout.config}: sshd refuses it: {check.stderr.strip()}")
    return sshd, owner


def start_sftp(paths: LabPaths) -> None:
    """The provider's SFTP account on the bridge address (idempotent)."""
    if not is_running(SFTP, paths):
        paths.run.mkdir(parents=True, exist_ok=True)
        sshd, owner = _prepare_sftp(paths)
        layout = sftp_layout(paths)
        # Absolute path: sshd re-executes itself for each connection. -D: in the
        # foreground (its pid is ours to stop), -e: its log to stderr, i.e. logs/sftp.log.
        argv = [str(sshd.absolute()), "-D", "-e", "-f", str(layout.config.absolute())]
        _start_as(SFTP, paths, argv, owner, layout.home)
    _wait_port(SFTP, paths=paths)


def _s3proxy_jar(paths: LabPaths) -> artifacts.Artifact:
    wanted = [a for a in artifacts.load_manifest() if a.file.startswith(S3PROXY_PREFIX)]
    if len(wanted) != 1:
        raise EducloudError(f"{artifacts.manifest_file()}: expected one {S3PROXY_PREFIX}*.jar")
    # Fetched here: the services start before `lab up` fetches the other artifacts.
    artifacts.fetch_all(paths, wanted)
    return wanted[0]


def _prepare_s3(paths: LabPaths) -> tuple[Path, tuple[int, int]]:
    layout = s3_layout(paths)
    jar = _s3proxy_jar(paths)
    owner = ensure_account(S3_ACCOUNT, layout.home, "backup provider S3")
    _directory(paths.provider, 0o755)
    _directory(layout.root, 0o755)
    _directory(layout.home, 0o700, owner)
    _directory(layout.data, 0o700, owner)
    # The account cannot read the lab directory: a copy of the jar beside its files.
    copy = layout.root / jar.file
    source = paths.artifacts / jar.file
    if not copy.is_file() or copy.stat().st_size != source.stat().st_size:
        tmp = copy.with_name(f".{copy.name}.part")
        shutil.copyfile(source, tmp)
        tmp.chmod(0o644)
        tmp.replace(copy)
    if not layout.credentials.exists():
        _write_atomically(layout.credentials, credentials_text(*new_credentials()).encode(), 0o600)
    if needs_new_certificate(layout):
        ca_cert, key, cert = make_certificates()
        password = secrets.token_urlsafe(24)
        pem = serialization.Encoding.PEM
        _write_atomically(
            layout.keystore, keystore_bytes(key, cert, ca_cert, password), 0o600, owner
        )
        _write_atomically(layout.keystore_password, password.encode(), 0o600)
        _write_atomically(layout.certificate, cert.public_bytes(pem), 0o644)
        _write_atomically(layout.ca_certificate, ca_cert.public_bytes(pem), 0o644)
    _own(layout.keystore, 0o600, owner)
    identity, credential = s3_credentials(paths)
    password = layout.keystore_password.read_text(encoding="ascii").strip()
    text = s3proxy_properties_text(layout, identity, credential, password)
    _write_atomically(layout.properties, text.encode(), 0o600, owner)
    return copy, owner


def start_s3(paths: LabPaths) -> None:
    """The provider's S3 storage on the bridge address, HTTPS only (idempotent)."""
    if not is_running(S3, paths):
        paths.run.mkdir(parents=True, exist_ok=True)
        jar, owner = _prepare_s3(paths)
        layout = s3_layout(paths)
        java = find_tool("java")
        if java is None:
            raise EducloudError(
                "the lab's S3 storage needs Java: apt-get install -y default-jre-headless"
            )
        argv = [
            java,
            "-Xmx512m",
            f"-Djava.io.tmpdir={layout.home}",
            f"-Duser.home={layout.home}",
            "-jar",
            str(jar),
            "--properties",
            str(layout.properties),
        ]
        _start_as(S3, paths, argv, owner, layout.home)
    _wait_port(S3, timeout=90.0, paths=paths)
