"""The lab's backup provider (SFTP account, S3 storage): its pure parts, without root or bridge.

Starting the servers is proved on the lab (restic against both); here: the configuration
texts, the authorized_keys file, the credentials and the endpoint's certificates.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from educloud.errors import EducloudError
from educloud.lab import network, services
from educloud.lab.settings import BRIDGE_ADDRESS, S3_PORT, SFTP_PORT, LabPaths


def _public_key(comment: str = "probe") -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{line.decode()} {comment}"


def _directives(text: str) -> dict[str, str]:
    pairs = (line.split(None, 1) for line in text.splitlines() if line and line[0] != "#")
    return {key: value for key, value in pairs}


# --- Where things are --------------------------------------------------------------------


def test_provider_directory_is_beside_the_lab_directory(tmp_path):
    paths = LabPaths(tmp_path / "educloud-lab")
    assert paths.provider == tmp_path / "educloud-lab-provider"
    assert services.sftp_layout(paths).root == paths.provider / "sftp"
    assert services.s3_layout(paths).root == paths.provider / "s3"
    repository = services.sftp_repository_path(paths, "edu1")
    assert repository == paths.provider / "sftp" / "home" / "repos" / "edu1"
    assert repository.is_absolute()


def test_s3_repository_is_path_style_https(tmp_path):
    assert services.s3_repository("bucket", "edu1") == "s3:https://198.18.0.1:9443/bucket/edu1"
    paths = LabPaths(tmp_path / "lab")
    directory = services.s3_object_directory(paths, "bucket", "edu1")
    assert directory == paths.provider / "s3" / "data" / "bucket" / "edu1"


def test_both_services_are_lab_services_the_firewall_lets_in():
    assert {services.SFTP, services.S3} <= set(services.ALL_SERVICES)
    assert (services.SFTP.port, services.S3.port) == (SFTP_PORT, S3_PORT) == (2222, 9443)
    ports = {int(port) for port in network.LAB_SERVICE_PORTS.split(",")}
    assert {SFTP_PORT, S3_PORT} <= ports
    assert f"tcp dport {{ {network.LAB_SERVICE_PORTS} }}" in network.nft_ruleset()
    # Their command lines do not carry their address: each has a marker of its own.
    assert services.SFTP.marker == services.SSHD_CONFIG_NAME
    assert services.S3.marker == "s3proxy"


# --- sshd -----------------------------------------------------------------------------------


def test_sshd_config_serves_sftp_only_to_one_account_with_keys(tmp_path):
    layout = services.SftpLayout(tmp_path / "sftp")
    text = services.sshd_config_text(layout)
    assert text.startswith("# managed by educloud lab")
    config = _directives(text)
    assert config["ListenAddress"] == f"{BRIDGE_ADDRESS}:{SFTP_PORT}"
    assert config["AllowUsers"] == services.SFTP_ACCOUNT
    assert config["Subsystem"] == "sftp internal-sftp"
    assert config["ForceCommand"] == "internal-sftp"
    assert config["AuthenticationMethods"] == "publickey"
    for directive in (
        "PasswordAuthentication",
        "KbdInteractiveAuthentication",
        "UsePAM",
        "PermitRootLogin",
        "PermitTTY",
    ):
        assert config[directive] == "no", directive
    assert config["DisableForwarding"] == "yes"
    assert config["StrictModes"] == "yes"
    assert config["LogLevel"] == "VERBOSE"
    # Files the unprivileged sshd reads or writes: absolute, under the provider's directory.
    assert config["HostKey"] == str(layout.host_key)
    assert config["AuthorizedKeysFile"] == str(layout.authorized_keys)
    assert config["PidFile"] == str(layout.run / "sshd.pid")
    for directive in ("HostKey", "AuthorizedKeysFile", "PidFile", "ModuliFile"):
        assert Path(config[directive]).is_relative_to(tmp_path / "sftp"), directive


def test_parse_public_key_reads_a_pub_file_line():
    line = _public_key("someone@somewhere") + "\n"
    key_type, blob = services.parse_public_key(line)
    assert key_type == "ssh-ed25519"
    assert line.split()[1] == blob


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "not an OpenSSH public key"),
        ("ssh-dss AAAAB3NzaC1kc3M=", "not an OpenSSH public key"),
        ('command="id" ssh-ed25519 AAAA', "not an OpenSSH public key"),
        ("ssh-ed25519 not*base64", "not base64"),
        # A well-formed ssh-rsa blob announced as ed25519.
        ("ssh-ed25519 " + base64.b64encode(b"\0\0\0\x07ssh-rsa").decode(), "not of that type"),
        ("ssh-ed25519 AAAA\nssh-ed25519 AAAA", "one line"),
    ],
)
def test_parse_public_key_refuses(line, message):
    with pytest.raises(EducloudError, match=message):
        services.parse_public_key(line)


def test_add_authorized_key_is_idempotent(tmp_path):
    path = tmp_path / "authorized_keys"
    first, second = _public_key("one"), _public_key("two")
    assert services.add_authorized_key(path, first + "\n") is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # The same key under another comment, or with other spacing, is the same key.
    key_type, blob, _ = first.split(" ", 2)
    assert services.add_authorized_key(path, f"{key_type}  {blob} renamed") is False
    assert services.add_authorized_key(path, second) is True
    assert services.add_authorized_key(path, second) is False
    assert path.read_text() == f"{first}\n{second}\n"


def test_remove_authorized_key_takes_out_that_key_only(tmp_path):
    path = tmp_path / "authorized_keys"
    first, second = _public_key("one"), _public_key("two")
    assert services.remove_authorized_key(path, first) is False  # no file yet
    path.write_text(f"# note\n{first}\n{second}\n")
    assert services.remove_authorized_key(path, " ".join(first.split()[:2]) + " other") is True
    assert path.read_text() == f"# note\n{second}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert services.remove_authorized_key(path, first) is False


def test_add_authorized_key_keeps_lines_it_does_not_read(tmp_path):
    path = tmp_path / "authorized_keys"
    path.write_text("# a provider's note\n")
    line = _public_key()
    assert services.add_authorized_key(path, line) is True
    assert path.read_text() == f"# a provider's note\n{line}\n"


def test_sftp_host_key_drops_the_comment(tmp_path):
    paths = LabPaths(tmp_path / "lab")
    layout = services.sftp_layout(paths)
    layout.root.mkdir(parents=True)
    line = _public_key("educloud-lab-sftp@lab")
    layout.host_key.with_suffix(".pub").write_text(line + "\n")
    expected = " ".join(line.split()[:2])
    assert services.sftp_host_key(paths) == expected
    assert services.sftp_known_hosts_line(paths) == f"[198.18.0.1]:2222 {expected}"


def test_sftp_host_key_says_when_there_is_none(tmp_path):
    with pytest.raises(EducloudError, match="no SFTP host key yet"):
        services.sftp_host_key(LabPaths(tmp_path / "lab"))


# --- s3proxy --------------------------------------------------------------------------------


def test_s3proxy_properties_are_https_only_and_signed(tmp_path):
    layout = services.S3Layout(tmp_path / "s3")
    text = services.s3proxy_properties_text(layout, "ECLABID", "secret-1", "store-pass")
    assert text.startswith("# managed by educloud lab")
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    properties = dict(line.split("=", 1) for line in lines)
    assert properties == {
        "s3proxy.secure-endpoint": "https://198.18.0.1:9443",
        "s3proxy.authorization": "aws-v2-or-v4",
        "s3proxy.identity": "ECLABID",
        "s3proxy.credential": "secret-1",
        "s3proxy.keystore-path": str(layout.keystore),
        "s3proxy.keystore-password": "store-pass",
        "jclouds.provider": "filesystem",
        "jclouds.filesystem.basedir": str(layout.data),
    }
    assert "s3proxy.endpoint" not in properties  # no plain HTTP


@pytest.mark.parametrize("bad", ["", "a\\b", "a\nb"])
def test_s3proxy_properties_refuse_values_java_would_read_otherwise(tmp_path, bad):
    with pytest.raises(EducloudError, match="s3proxy property"):
        services.s3proxy_properties_text(services.S3Layout(tmp_path), "id", bad, "pass")


def test_credentials_round_trip():
    access, secret = services.new_credentials()
    assert len(access) == 20 and access.isalnum() and access.isupper() is True
    assert len(secret) == 40
    assert services.new_credentials() != (access, secret)
    text = services.credentials_text(access, secret)
    assert text == f"AWS_ACCESS_KEY_ID={access}\nAWS_SECRET_ACCESS_KEY={secret}\n"
    assert services.parse_credentials(text) == (access, secret)
    with pytest.raises(EducloudError, match="AWS_SECRET_ACCESS_KEY"):
        services.parse_credentials(f"AWS_ACCESS_KEY_ID={access}\n")


def test_s3_credentials_and_ca_read_the_provider_files(tmp_path):
    paths = LabPaths(tmp_path / "lab")
    with pytest.raises(EducloudError, match="no S3 credentials yet"):
        services.s3_credentials(paths)
    layout = services.s3_layout(paths)
    layout.root.mkdir(parents=True)
    layout.credentials.write_text(services.credentials_text("ECLABX", "s3cret"))
    layout.ca_certificate.write_text("-----BEGIN CERTIFICATE-----\n")
    assert services.s3_credentials(paths) == ("ECLABX", "s3cret")
    assert services.s3_ca_certificate(paths).startswith("-----BEGIN CERTIFICATE-----")


def test_endpoint_certificate_names_the_address_and_verifies_under_its_ca():
    ca_cert, key, cert = services.make_certificates()
    address = ipaddress.IPv4Address("198.18.0.1")
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [address]
    # The verifier of cryptography applies the CA's name constraints, as Go's (restic) does.
    store = Store([ca_cert])
    verifier = PolicyBuilder().store(store).build_server_verifier(x509.IPAddress(address))
    chain = verifier.verify(cert, [])
    assert chain[-1] == ca_cert
    other = (
        PolicyBuilder()
        .store(store)
        .build_server_verifier(x509.IPAddress(ipaddress.IPv4Address("198.18.0.2")))
    )
    with pytest.raises(VerificationError):
        other.verify(cert, [])
    assert cert.public_key() == key.public_key()


def test_endpoint_ca_permits_only_the_address():
    ca_cert, _, _ = services.make_certificates()
    constraints = ca_cert.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    assert constraints.value.permitted_subtrees == [
        x509.IPAddress(ipaddress.IPv4Network("198.18.0.1/32"))
    ]
    basic = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert basic.ca and basic.path_length == 0


def test_keystore_holds_the_key_and_chain():
    ca_cert, key, cert = services.make_certificates()
    data = services.keystore_bytes(key, cert, ca_cert, "store-pass")
    loaded_key, loaded_cert, extra = pkcs12.load_key_and_certificates(data, b"store-pass")
    assert loaded_cert == cert
    assert extra == [ca_cert]
    assert loaded_key is not None and loaded_key.public_key() == key.public_key()
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(data, b"wrong")


def test_needs_new_certificate_when_a_file_is_missing_or_it_ends_soon(tmp_path):
    layout = services.S3Layout(tmp_path)
    assert services.needs_new_certificate(layout)
    ca_cert, key, cert = services.make_certificates(days=100)
    pem = serialization.Encoding.PEM
    layout.ca_certificate.write_bytes(ca_cert.public_bytes(pem))
    layout.certificate.write_bytes(cert.public_bytes(pem))
    layout.keystore.write_bytes(services.keystore_bytes(key, cert, ca_cert, "p"))
    layout.keystore_password.write_text("p")
    assert not services.needs_new_certificate(layout)
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=80)
    assert services.needs_new_certificate(layout, now=later)
    layout.keystore.unlink()
    assert services.needs_new_certificate(layout)
