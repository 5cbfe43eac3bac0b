"""What `educloud init` asks: each question, its flag, which profile needs it."""

from __future__ import annotations

from dataclasses import dataclass

PROFILES = ("single", "regional")
# --certificates: the reverse_proxy role's reverse_proxy_certificate_source.
CERTIFICATE_SOURCES = {"files": "files", "acme": "acme", "internal": "internal_ca"}
# Regional hosts are named by their tier (as in inventories/example-regional): lb1, kc2...
TIERS = {
    "lb": "load balancer (nginx, HAProxy, keepalived)",
    "kc": "Keycloak node",
    "nc": "Nextcloud application server",
    "db": "database node (PostgreSQL under Patroni, etcd, Redis with Sentinel)",
}


@dataclass(frozen=True)
class Question:
    """One answer: its key (in the saved answers), its flag, and how it is asked."""

    key: str
    flag: str
    prompt: str
    many: bool = False
    required: bool = True
    profiles: tuple[str, ...] = PROFILES
    flag_value: bool = False  # a switch (--x/--no-x), never asked


QUESTIONS = (
    Question(
        "public_domain",
        "--public-domain",
        "Public domain of the service (its sites are auth.<domain>, auth-admin.<domain> "
        "and cloud.<domain>), e.g. ecoles.ville-exemple.fr",
    ),
    Question(
        "organisation",
        "--organisation",
        "Name of the organisation that runs the service (the controller named in the "
        "privacy notice), e.g. Ville d'Exemple",
    ),
    Question(
        "postal_address",
        "--postal-address",
        "Its postal address, lines separated by ';' (the privacy notice)",
    ),
    Question(
        "hosts",
        "--host",
        "The server(s), NAME=ADDRESS (regional: names by tier, lb1, kc1, nc1, db1..., "
        "comma-separated)",
        many=True,
    ),
    Question(
        "backup_host",
        "--backup-host",
        "The backup server, another Debian 12 machine, NAME=ADDRESS",
        required=False,  # asked unless --backup-provider is given (answers.missing)
    ),
    # Backups at a provider instead (flags only, never asked but the SFTP host key).
    Question(
        "backup_provider",
        "--backup-provider",
        "Backup provider",
        required=False,
    ),
    Question(
        "backup_provider_host_key",
        "--backup-provider-host-key",
        "The backup provider's SFTP server host key, checked with the provider "
        '("ssh-ed25519 AAAA...")',
        required=False,  # asked for an sftp provider
    ),
    Question("backup_provider_name", "--backup-provider-name", "S3 endpoint name", required=False),
    Question("backup_provider_ca", "--backup-provider-ca", "S3 endpoint's CA", required=False),
    Question(
        "floating_address",
        "--floating-address",
        "The load balancers' floating address (keepalived), where the public names point",
        profiles=("regional",),
    ),
    Question(
        "provider",
        "--provider",
        "Hosting provider: an id approved in the policies' hosting.yml",
    ),
    Question("datacenter", "--datacenter", "Datacenter, one of that provider's in hosting.yml"),
    Question(
        "admin_networks",
        "--admin-network",
        "Networks your administrators work from: SSH, admin consoles (CIDR, comma-separated)",
        many=True,
    ),
    Question(
        "apt_mirror",
        "--apt-mirror",
        "Debian package mirror or apt proxy the servers use, by IP address "
        "(e.g. http://10.0.0.5:3142): the only package source their firewall allows",
    ),
    Question(
        "artifact_mirror",
        "--artifact-mirror",
        "URL of the internal mirror the servers download Keycloak's release archive from, "
        "by IP address (e.g. http://10.0.0.5:8088/educloud)",
    ),
    Question(
        "smtp_relay",
        "--smtp-relay",
        "Mail relay for alerts (backup failures, reports of illicit content), ADDRESS[:PORT]",
    ),
    Question(
        "operator_email",
        "--operator-email",
        "The administrators' e-mail address (backup failures, moderation, platform admin)",
    ),
    Question(
        "dpo_email",
        "--dpo-email",
        "The data protection officer's e-mail address (the privacy notice)",
    ),
    Question(
        "certificates",
        "--certificates",
        "Where TLS certificates come from: files (your certificate provider's), acme, "
        "or internal (a CA kept in this folder)",
    ),
    Question(
        "acme_directory",
        "--acme-directory",
        "The ACME CA's directory URL (https://.../directory)",
        required=False,  # asked when --certificates acme
    ),
    Question(
        "acme_address",
        "--acme-address",
        "The ACME CA's address or network, as your firewall sees it (the servers may reach "
        "only declared destinations)",
        required=False,  # asked when --certificates acme
    ),
    Question(
        "object_storage",
        "--object-storage",
        "S3-compatible object storage for Nextcloud's files, ADDRESS[:PORT] (hosted in an "
        "allowed country)",
        profiles=("regional",),
    ),
    Question(
        "object_storage_bucket",
        "--object-storage-bucket",
        "Its bucket",
        profiles=("regional",),
    ),
    # Optional: a default when not given, never asked.
    Question("realm", "--realm", "Keycloak realm", required=False),
    Question("auth_name", "--auth-name", "Login site", required=False),
    Question("auth_admin_name", "--auth-admin-name", "Admin site", required=False),
    Question("cloud_name", "--cloud-name", "Nextcloud site", required=False),
    Question("country", "--country", "Country", required=False),
    Question("reporting_email", "--reporting-email", "Reporting address", required=False),
    Question("mail_sender", "--mail-sender", "Sender of the alerts", required=False),
    Question("smtp_starttls", "--smtp-starttls", "STARTTLS", required=False, flag_value=True),
    Question("dns_servers", "--dns-server", "Name servers", many=True, required=False),
    Question("ntp_servers", "--ntp-server", "Time servers", many=True, required=False),
    Question("ssh_user", "--ssh-user", "SSH user", required=False),
    Question("ssh_key", "--ssh-key", "SSH private key", required=False),
    Question(
        "object_storage_region",
        "--object-storage-region",
        "Its region",
        required=False,
        profiles=("regional",),
    ),
    Question(
        "vrrp_interface",
        "--vrrp-interface",
        "VRRP interface",
        required=False,
        profiles=("regional",),
    ),
)
BY_KEY = {q.key: q for q in QUESTIONS}
