"""The files of a deployment's inventory, rendered from the answers.

Single server (`single`): one server in every group but backup_target (its own Redis in
the redis group, local mode), a second server keeping the encrypted backups; modelled on
inventories/lab without what is the lab's.
With --backup-provider, no backup server: the backup group's variables send the backups to
the provider's SFTP account or S3 storage (roles/backup, backup_destination).
Regional (`regional`): inventories/example-regional's topology (load balancers with a
floating address, a Keycloak cluster, Nextcloud on S3, Patroni, etcd, Redis with Sentinel).

Every file but one is init's: rewritten from the answers on each run, so the operator's own
settings go in a `local.yml` beside it (Ansible reads a group's files in name order, so
local.yml overrides init.yml). The privacy notice is written once, then the operator's.
Every secret is a `{{ vault_... }}` reference (educloud.deployment.secrets).
"""

from __future__ import annotations

from typing import Any

from educloud.init import places as folder
from educloud.init.answers import Answers, BackupProvider
from educloud.init.cluster import etcd_vars, load_balancer_vars, redis_vars
from educloud.init.places import Places
from educloud.init.yamltext import INIT, OPERATOR, File, _header, _list, _yaml, q

__all__ = ["INIT", "OPERATOR", "File", "inventory_files", "q"]

# --- hosts.yml ----------------------------------------------------------------------------


def _groups(answers: Answers) -> dict[str, list[str]]:
    if not answers.regional:
        server = answers.hosts[0].name
        groups = (
            "postgresql",
            "redis",
            "keycloak",
            "reverse_proxy",
            "nextcloud",
            "data_rights",
            "backup",
        )
        return {group: [server] for group in groups} | _backup_target_group(answers)

    def names(prefix: str) -> list[str]:
        return [h.name for h in answers.tier(prefix)]

    return {
        "load_balancer": names("lb"),
        "reverse_proxy": names("lb"),
        "keycloak": names("kc"),
        "nextcloud": names("nc"),
        # The report service serves /signalement behind the proxy of its own host.
        "data_rights": names("lb")[:1],
        "etcd": names("db"),
        "postgresql": names("db"),
        "redis": names("db"),
        "backup": list(answers.backup_clients),
    } | _backup_target_group(answers)


def _backup_target_group(answers: Answers) -> dict[str, list[str]]:
    """The backup server's group; none when backups go to a provider."""
    return {"backup_target": [answers.backup_host.name]} if answers.backup_host else {}


def hosts_file(answers: Answers, places: Places) -> str:
    variables: dict[str, Any] = {
        "ansible_user": answers.ssh_user,
        "ansible_python_interpreter": "/usr/bin/python3",
    }
    if answers.ssh_key:
        variables["ansible_ssh_private_key_file"] = answers.ssh_key
    variables["educloud_policies_dir"] = places.policies
    hosts: dict[str, dict[str, str]] = {}
    backup = (answers.backup_host,) if answers.backup_host else ()
    for host in (*answers.hosts, *backup):
        hosts[host.name] = {"ansible_host": host.address}
        if answers.regional:
            # The address the other members of a cluster reach this host on.
            hosts[host.name]["educloud_private_address"] = host.address
    children = {
        group: {"hosts": dict.fromkeys(members)} for group, members in _groups(answers).items()
    }
    body = {"all": {"vars": variables, "hosts": hosts, "children": children}}
    backups = "a backup server" if answers.backup_host else "backups at a provider"
    what = (
        f"one server with the whole stack, and {backups}"
        if not answers.regional
        else "a regional deployment (docs/regional.md): load balancers, Keycloak cluster, "
        f"Nextcloud on S3, databases under Patroni, {backups}"
    )
    return (
        f"# {answers.organisation}: {what}.\n"
        "# Written by 'educloud init' from its answers (../educloud-init.yml): run it again to\n"
        "# change them; edits here are replaced. educloud_policies_dir is this deployment's\n"
        "# own copy of the policies, beside the inventory (never inside it).\n" + _yaml(body)
    )


# --- group_vars ---------------------------------------------------------------------------


def all_vars(answers: Answers) -> str:
    text = _header("Every host: where it runs (C1) and who administers it (C10).")
    text += (
        "# Where every host runs (C1): a provider and datacenter approved in the policies'\n"
        "# hosting.yml. A host elsewhere declares its own in host_vars/<host>.yml.\n"
        "educloud_hosting:\n"
        f"  provider: {q(answers.provider)}\n"
        f"  country: {q(answers.country)}\n"
        f"  datacenter: {q(answers.datacenter)}\n"
        "# The administrators' networks: SSH, the admin consoles and the moderation API.\n"
        "educloud_admin_networks:\n"
        f"{_list(answers.admin_networks)}"
        'common_ssh_allowed_networks: "{{ educloud_admin_networks }}"\n'
        "# Every host's mail (failure mails, unattended-upgrades' errors) to the operators,\n"
        "# through the mail relay (policies' egress.yml).\n"
        + _mail(answers, "common_mail")
        + "common_mail_operators:\n"
        + _list([answers.operator_email])
    )
    if answers.regional:
        text += (
            "# The load balancers' floating address (keepalived): the public names point to it,\n"
            "# and the applications reach the database's leader and the Redis master there.\n"
            f"regional_load_balancer_address: {q(answers.floating_address)}\n"
        )
    return text


def _csp(form_action: str, eval_allowed: bool = False) -> str:
    scripts = "'self' 'unsafe-inline'" + (" 'unsafe-eval'" if eval_allowed else "")
    return (
        f"      default-src 'self'; script-src {scripts}; style-src 'self' 'unsafe-inline';\n"
        "      img-src 'self' data:; font-src 'self'; frame-src 'self'; frame-ancestors 'self';\n"
        "      object-src 'none'; base-uri 'self';\n"
        f"      form-action {form_action}\n"
    )


def _certificate(answers: Answers, places: Places, name: str) -> str:
    if answers.certificates != "files":
        return ""
    base = places.under_root(folder.CERTIFICATES)
    return (
        f"    certificate_src: {q(f'{base}/{name}.crt')}\n"
        f"    certificate_key_src: {q(f'{base}/{name}.key')}\n"
    )


def reverse_proxy_vars(answers: Answers, places: Places) -> str:
    keycloak, nextcloud = ("8180", "8181") if answers.regional else ("8080", "8081")
    text = _header("nginx: TLS, the charter's headers, the sites (C3, C6, C9, C10).")
    text += f"reverse_proxy_certificate_source: {answers.certificate_source}\n"
    if answers.certificates == "internal":
        text += (
            "# The internal CA: its key stays in this folder on this machine (keep it with the\n"
            "# vault password); its certificate is copied beside it for the schools' browsers\n"
            "# and for 'educloud verify'.\n"
            f"reverse_proxy_ca_controller_dir: {q(places.under_root(folder.CA_DIR))}\n"
            f"reverse_proxy_ca_export_path: {q(places.under_root(folder.CA_EXPORT))}\n"
        )
    elif answers.certificates == "acme":
        text += (
            "# ACME: the CA you chose (its address declared in the policies' egress.yml);\n"
            "# setting terms_agreed says that you accept its terms of service.\n"
            f"reverse_proxy_acme_directory_url: {q(answers.acme_directory)}\n"
            f"reverse_proxy_acme_account_email: {q(answers.operator_email)}\n"
            "reverse_proxy_acme_terms_agreed: true\n"
        )
    else:
        text += (
            "# Files from your certificate provider: each site's chain (certificate then\n"
            "# intermediates) and key, in the certificates/ folder beside the inventory.\n"
        )
    if answers.dns_servers:
        text += f"reverse_proxy_resolvers:\n{_list(answers.dns_servers)}"
    auth, admin, cloud = answers.sites
    text += (
        "reverse_proxy_sites:\n"
        "  # Keycloak's public site: the tenant realm's login and account pages only; the\n"
        "  # master realm, the admin console and API, /metrics and /health stay off it.\n"
        f"  - name: {auth}\n"
        f"    upstream: http://127.0.0.1:{keycloak}\n"
        f"    allow_paths: [/realms/{answers.realm}/, /resources/, /robots.txt]\n"
        "    csp: >-\n" + _csp(f"'self' https://{cloud}") + _certificate(answers, places, auth)
    )
    text += (
        "  # Keycloak's admin console and API: only from the administrators' networks, and\n"
        "  # from this host itself: the retention run (group data_rights) signs in through it.\n"
        f"  - name: {admin}\n"
        f"    upstream: http://127.0.0.1:{keycloak}\n"
        "    allow_networks: \"{{ educloud_admin_networks | union(['127.0.0.1/32']) }}\"\n"
        "    csp: >-\n" + _csp("'self'", eval_allowed=True) + _certificate(answers, places, admin)
    )
    text += (
        "  # Nextcloud: it sends its own, stricter CSP with nonces; this one keeps every\n"
        "  # origin 'self' (C3).\n"
        f"  - name: {cloud}\n"
        f"    upstream: http://127.0.0.1:{nextcloud}\n"
        "    client_max_body_size: 1G\n"
        "    csp: >-\n"
        "      default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval';"
        " style-src 'self' 'unsafe-inline';\n"
        "      img-src 'self' data: blob:; font-src 'self' data:; media-src 'self' blob:;"
        " worker-src 'self' blob:;\n"
        "      connect-src 'self'; frame-src 'self'; frame-ancestors 'self'; object-src 'none';"
        " base-uri 'self';\n"
        "      form-action 'self'\n" + _certificate(answers, places, cloud)
    )
    where = "this same host" if not answers.regional else "the first load balancer"
    text += (
        f"# Reporting illicit content (C9): the reporting role's service on {where},\n"
        "# served on every site at /signalement; its moderation API on the admin site only.\n"
        "reverse_proxy_reporting_upstream: http://127.0.0.1:8090\n"
        f"reverse_proxy_reporting_admin_site: {admin}\n"
    )
    return text


def privacy_notice(answers: Answers) -> str:
    address = "\n".join(answers.postal_address)
    staff = f"Les personnels habilités de {answers.organisation} (administrateurs de la plateforme)"
    return (
        "---\n"
        "# The privacy notice every site serves at /confidentialite (C6), with the address for\n"
        "# reporting illicit content (C9). Written once by 'educloud init' from its answers;\n"
        "# yours from now on (init never rewrites it): review it with your data protection\n"
        "# officer, the purposes, the people concerned and the recipients above all.\n"
        "reverse_proxy_privacy_notice:\n"
        f"  controller_name: {q(answers.organisation)}\n"
        f"  controller_address: {q(address)}\n"
        f"  dpo_email: {q(answers.dpo_email)}\n"
        f"  reporting_email: {q(answers.reporting_email)}\n"
        "  processing_purposes:\n"
        "    - purpose: Authentifier les élèves et les personnels (authentification unique)\n"
        "      legal_basis: Mission de service public d'enseignement (RGPD art. 6.1.e)\n"
        "    - purpose: Stocker, partager et coéditer des fichiers\n"
        "      legal_basis: Mission de service public d'enseignement (RGPD art. 6.1.e)\n"
        "    - purpose: Assurer la sécurité du service (journaux)\n"
        "      legal_basis: Obligation de sécurité (RGPD art. 32)\n"
        "  data_subjects: [Élèves, Personnels des établissements]\n"
        "  recipients:\n"
        f"    - {q(staff)}\n"
        "    - Les enseignants, pour les contenus partagés avec leurs classes\n"
    )


def keycloak_vars(answers: Answers) -> str:
    auth, admin, cloud = answers.sites
    text = _header("Keycloak: single sign-on, the tenant realm as code (C2, C4, C5, C7, C10).")
    text += (
        "# The release archive from your internal mirror (its SHA-256 is checked).\n"
        "keycloak_archive_url: "
        + q(f"{answers.artifact_mirror.url}/keycloak-quarkus-dist-{{{{ keycloak_version }}}}.zip")
        + "\n"
    )
    if answers.regional:
        text += (
            "# A cluster of nodes behind HAProxy (sessions in the database, nodes found through\n"
            "# it); the database's leader through the load balancers.\n"
            "keycloak_cache: ispn\n"
            'keycloak_http_host: "{{ educloud_private_address }}"\n'
            "keycloak_http_allowed_addresses: \"{{ groups['load_balancer'] | map('extract',"
            " hostvars, 'educloud_private_address') | list }}\"\n"
            'keycloak_db_host: "{{ regional_load_balancer_address }}"\n'
        )
    text += (
        f"keycloak_hostname: https://{auth}\n"
        f"keycloak_hostname_admin: https://{admin}\n"
        "# The bootstrap administrator: used once to hand master over to the automation\n"
        "# client, then deleted.\n"
        'keycloak_admin_password: "{{ vault_keycloak_admin_password }}"\n'
        "# What Ansible and the tools sign in to master with (client credentials).\n"
        'keycloak_automation_client_secret: "{{ vault_keycloak_automation_client_secret }}"\n'
        "# The platform's administrator: OTP to configure at the first login; its initial\n"
        "# password is the vault's vault_keycloak_admin_password.\n"
        "keycloak_master_admins:\n"
        "  - username: admin-plateforme\n"
        f"    email: {q(answers.operator_email)}\n"
        '    password: "{{ vault_keycloak_admin_password }}"\n'
        'keycloak_db_password: "{{ vault_keycloak_db_password }}"\n'
        "keycloak_realms:\n"
        f"  - name: {answers.realm}\n"
        f"    display_name: {q(answers.organisation)}\n"
        "keycloak_clients:\n"
        "  - client_id: nextcloud\n"
        "    name: Nextcloud\n"
        '    secret: "{{ vault_nextcloud_oidc_client_secret }}"\n'
        f"    root_url: https://{cloud}\n"
        "    redirect_uris:\n"
        f"      - https://{cloud}/apps/user_oidc/code\n"
        "# Service clients of the educloud tools, each with only the roles it needs. The\n"
        "# accounts tool's bulk import (manage-realm, a provider jar) is not enabled: see\n"
        "# docs/accounts.md (its secret, vault_accounts_bulk_client_secret, is in the vault).\n"
        "keycloak_service_clients:\n"
        "  - client_id: educloud-accounts\n"
        "    name: Annuaire educloud\n"
        '    secret: "{{ vault_accounts_client_secret }}"\n'
        "    realm_management_roles: [manage-users]\n"
        "  # Data rights (C7, C8, C12): retention, exports, statistics.\n"
        "  - client_id: educloud-data-rights\n"
        "    name: Droits et obligations sur les données\n"
        '    secret: "{{ vault_data_rights_client_secret }}"\n'
        "    realm_management_roles: [manage-users, view-events, view-realm]\n"
    )
    return text


def nextcloud_vars(answers: Answers) -> str:
    auth, _, cloud = answers.sites
    text = _header("Nextcloud: files and co-editing, sign-in through Keycloak.")
    text += (
        "# The release archive: EDUCLOUD_NEXTCLOUD_ARCHIVE and EDUCLOUD_NEXTCLOUD_ARCHIVE_SHA256\n"
        "# when you deploy, or nextcloud_archive_url and nextcloud_archive_sha256 in local.yml\n"
        "# (docs/nextcloud.md). Without one the role stops before the install step, saying so.\n"
        f"nextcloud_hostname: {cloud}\n"
        'nextcloud_admin_password: "{{ vault_nextcloud_admin_password }}"\n'
        'nextcloud_db_password: "{{ vault_nextcloud_db_password }}"\n'
        'nextcloud_redis_password: "{{ vault_redis_password }}"\n'
        f"nextcloud_oidc_discovery_url: https://{auth}/realms/{answers.realm}"
        "/.well-known/openid-configuration\n"
        'nextcloud_oidc_client_secret: "{{ vault_nextcloud_oidc_client_secret }}"\n'
    )
    if answers.regional and answers.object_storage is not None:
        storage = answers.object_storage
        text += (
            "# Application servers behind the load balancers: the database and Redis through\n"
            "# HAProxy there, files in S3-compatible storage (policies' egress.yml,\n"
            "# object_storage), background jobs on the first server.\n"
            'nextcloud_listen_address: "{{ educloud_private_address }}"\n'
            "nextcloud_trusted_proxies: \"{{ groups['load_balancer'] | map('extract', hostvars,"
            " 'educloud_private_address') | list }}\"\n"
            'nextcloud_db_host: "{{ regional_load_balancer_address }}"\n'
            'nextcloud_redis_host: "{{ regional_load_balancer_address }}"\n'
            "nextcloud_objectstore_s3:\n"
            f"  bucket: {q(storage.bucket)}\n"
            f"  hostname: {q(storage.endpoint.address)}\n"
            f"  port: {storage.endpoint.port}\n"
            f"  region: {q(storage.region)}\n"
            "  use_ssl: true\n"
            "  use_path_style: true\n"
            '  key: "{{ vault_nextcloud_s3_key }}"\n'
            '  secret: "{{ vault_nextcloud_s3_secret }}"\n'
            "# Keycloak's public name through the floating address, whatever DNS says.\n"
            "nextcloud_static_hosts:\n"
            f'  {auth}: "{{{{ regional_load_balancer_address }}}}"\n'
            "nextcloud_allow_local_remote_servers: true\n"
        )
    else:
        text += (
            "# Keycloak is on this same host, behind its proxy: reached there, whatever DNS says.\n"
            "nextcloud_static_hosts:\n"
            f"  {auth}: 127.0.0.1\n"
            "nextcloud_allow_local_remote_servers: true\n"
        )
        if answers.certificates == "internal":
            text += "nextcloud_trusted_ca_files:\n  - /etc/educloud/ca/ca.crt\n"
    return text


def postgresql_vars(answers: Answers) -> str:
    text = _header("PostgreSQL: one database and role per service (C1, C10).")
    if answers.regional:
        text += (
            "# Under Patroni: one leader, streaming replicas, etcd on the same hosts.\n"
            "postgresql_patroni_enabled: true\n"
            'postgresql_patroni_superuser_password: "{{ vault_patroni_superuser_password }}"\n'
            "postgresql_patroni_replication_password: "
            '"{{ vault_patroni_replication_password }}"\n'
            'postgresql_patroni_rest_password: "{{ vault_patroni_rest_password }}"\n'
            "postgresql_listen_addresses:\n"
            "  - localhost\n"
            '  - "{{ educloud_private_address }}"\n'
            "# The applications connect through HAProxy on the load balancers: from their\n"
            "# addresses, TLS and SCRAM only.\n"
            "postgresql_hba_entries: >-\n"
            "  {{ groups['load_balancer'] | map('extract', hostvars, 'educloud_private_address')\n"
            "  | map('regex_replace', '$', '/32') | map('community.general.dict_kv', 'address')\n"
            "  | map('combine', {'type': 'hostssl',\n"
            "  'database': 'keycloak,nextcloud,educloud_reports',\n"
            "  'user': 'keycloak,nextcloud,educloud_reports'}) | list }}\n"
        )
    text += (
        "postgresql_users:\n"
        "  - name: keycloak\n"
        '    password: "{{ vault_keycloak_db_password }}"\n'
        "  - name: nextcloud\n"
        '    password: "{{ vault_nextcloud_db_password }}"\n'
        "  - name: educloud_reports\n"
        '    password: "{{ vault_reports_db_password }}"\n'
        "postgresql_databases:\n"
        "  - name: keycloak\n"
        "    owner: keycloak\n"
        "  - name: nextcloud\n"
        "    owner: nextcloud\n"
        "  # The illicit-content report service (reporting role, C9).\n"
        "  - name: educloud_reports\n"
        "    owner: educloud_reports\n"
    )
    return text


def _mail(answers: Answers, prefix: str) -> str:
    relay = answers.smtp_relay
    return (
        f"{prefix}_host: {q(relay.address)}\n"
        f"{prefix}_port: {relay.port}\n"
        f"{prefix}_starttls: {'true' if answers.smtp_starttls else 'false'}\n"
        f"{prefix}_sender: {q(answers.mail_sender)}\n"
    )


def data_rights_vars(answers: Answers) -> str:
    auth, admin, cloud = answers.sites
    text = _header(
        "Data rights, the roles reporting (the report form, C9), educloud_tool and\n"
        "# retention (the daily retention run, C7)."
    )
    text += (
        'reporting_db_password: "{{ vault_reports_db_password }}"\n'
        'reporting_form_secret: "{{ vault_reports_form_secret }}"\n'
        'reporting_moderation_token: "{{ vault_reports_moderation_token }}"\n'
    )
    if answers.regional:
        text += (
            "# The report service's database: the Patroni leader's, through HAProxy.\n"
            'reporting_db_host: "{{ regional_load_balancer_address }}"\n'
        )
    text += (
        "# Each report alerts the moderators through the mail relay (policies' egress.yml).\n"
        + _mail(answers, "reporting_smtp")
        + "reporting_moderators:\n"
        + _list([answers.reporting_email])
        + f"reporting_platform_name: {q(answers.organisation)}\n"
        + "reporting_platform_hosts:\n"
        + _list([cloud, auth])
        + "# The retention run signs in to Keycloak through the admin site of the proxy on this\n"
        "# same host, and archives expired reports through the report service (same token).\n"
        f"retention_keycloak_url: https://{admin}\n"
        f"retention_keycloak_realm: {answers.realm}\n"
        'retention_keycloak_client_secret: "{{ vault_data_rights_client_secret }}"\n'
    )
    if answers.certificates == "internal":
        text += "retention_keycloak_ca_file: /etc/educloud/ca/ca.crt\n"
    text += (
        "retention_static_hosts:\n"
        f"  {admin}: 127.0.0.1\n"
        'retention_reports_token: "{{ vault_reports_moderation_token }}"\n'
    )
    return text


def _provider_backup_vars(answers: Answers, provider: BackupProvider) -> str:
    text = _header("Backups: encrypted, at a provider outside this inventory (C1, C7, C10).")
    text += (
        "# The provider's address and port are a backup_target destination of the policies'\n"
        "# egress.yml. Its account cannot be made append-only from here: docs/backup.md,\n"
        '# "Backups at a provider", says what to ask the provider for.\n'
        f"backup_destination: {provider.kind}\n"
    )
    if provider.kind == "sftp":
        text += (
            "# Each backed-up host has its own SSH key pair in the vault, keyed by inventory\n"
            "# name; the provider installs every public key on the account (README.md). Each\n"
            "# host's repository is a directory of its own, named after it.\n"
            f"backup_sftp_address: {q(provider.address)}\n"
            f"backup_sftp_port: {provider.port}\n"
            f"backup_sftp_user: {q(provider.user)}\n"
            f"backup_sftp_path: {q(provider.path + '/{{ inventory_hostname }}')}\n"
            "# The server's host key, checked with the provider: ssh refuses any other.\n"
            f"backup_sftp_host_key: {q(provider.host_key)}\n"
            'backup_ssh_private_key: "{{ vault_backup_ssh_private_keys[inventory_hostname] }}"\n'
        )
    else:
        text += (
            "# S3 over HTTPS, path-style; one repository per host in the bucket.\n"
            f"backup_s3_address: {q(provider.address)}\n"
            f"backup_s3_port: {provider.port}\n"
        )
        if provider.endpoint:
            text += (
                "# The name the endpoint's certificate gives, pinned to the address.\n"
                f"backup_s3_endpoint: {q(provider.endpoint)}\n"
            )
        text += f"backup_s3_bucket: {q(provider.bucket)}\n"
        if provider.prefix:
            text += f"backup_s3_prefix: {q(provider.prefix + '/{{ inventory_hostname }}')}\n"
        text += (
            "# The keys the provider gave, in the vault.\n"
            'backup_s3_access_key_id: "{{ vault_backup_s3_access_key_id }}"\n'
            'backup_s3_secret_access_key: "{{ vault_backup_s3_secret_access_key }}"\n'
        )
        if provider.ca_certificate:
            text += "# The CA that signed the endpoint's certificate (--backup-provider-ca).\n"
            text += "backup_s3_ca_certificate: |\n" + "".join(
                f"  {line}\n" for line in provider.ca_certificate.splitlines()
            )
    text += (
        'backup_repository_password: "{{ vault_backup_repository_password }}"\n'
        "# A failed run mails the operators through the mail relay (policies' egress.yml).\n"
        + _mail(answers, "backup_mail")
        + "backup_operators:\n"
        + _list([answers.operator_email])
    )
    return text


def backup_vars(answers: Answers) -> str:
    if answers.backup_provider is not None:
        return _provider_backup_vars(answers, answers.backup_provider)
    assert answers.backup_host is not None  # build() gives one of the two
    text = _header("Backups: encrypted, append-only, on the backup server (C1, C7, C10).")
    text += (
        "# Each backed-up host has its own SSH key pair in the vault, keyed by inventory name:\n"
        "# one key opens one append-only account on the backup server.\n"
        f"backup_target_host: {answers.backup_host.name}\n"
        'backup_repository_password: "{{ vault_backup_repository_password }}"\n'
        'backup_ssh_private_key: "{{ vault_backup_ssh_private_keys[inventory_hostname] }}"\n'
        "# A failed run mails the operators through the mail relay (policies' egress.yml).\n"
        + _mail(answers, "backup_mail")
        + "backup_operators:\n"
        + _list([answers.operator_email])
    )
    return text


def backup_target_vars(answers: Answers) -> str:
    text = _header("The backup server: one append-only account per backed-up host.")
    text += (
        "# Each client's own public key (vault_backup_ssh_public_keys), accepted only from the\n"
        "# client's address.\n"
        "backup_target_clients: >-\n"
        "  {%- set clients = [] -%}\n"
        "  {%- for name in groups['backup'] | default([]) -%}\n"
        "  {%-   set _ = clients.append({'name': name, 'key': vault_backup_ssh_public_keys[name],\n"
        "                               'from': [hostvars[name].ansible_host]}) -%}\n"
        "  {%- endfor -%}\n"
        "  {{ clients }}\n"
        "# SSH only from the administrators and the backup clients (each from its own address).\n"
        "common_ssh_allowed_networks: >-\n"
        "  {{ educloud_admin_networks\n"
        "     + (groups['backup'] | default([]) | map('extract', hostvars, 'ansible_host')\n"
        "        | map('regex_replace', '$', '/32') | list) }}\n"
    )
    return text


def ansible_cfg() -> str:
    return (
        "# Written by 'educloud init': where this inventory's vault password is. 'educloud\n"
        "# deploy', 'verify' and the other commands read it (a relative path is taken from\n"
        "# this file's folder).\n"
        "[defaults]\n"
        f"vault_password_file = ../{folder.PASSWORD}\n"
    )


def inventory_files(answers: Answers, places: Places) -> list[File]:
    """The inventory's files (not its vault), relative to the deployment's folder."""
    group = f"{folder.INVENTORY}/group_vars"
    files = [
        File(f"{folder.INVENTORY}/hosts.yml", hosts_file(answers, places)),
        File(folder.ANSIBLE_CFG, ansible_cfg()),
        File(f"{group}/all/init.yml", all_vars(answers)),
        File(f"{group}/reverse_proxy/init.yml", reverse_proxy_vars(answers, places)),
        File(f"{group}/reverse_proxy/privacy-notice.yml", privacy_notice(answers), OPERATOR),
        File(f"{group}/keycloak/init.yml", keycloak_vars(answers)),
        File(f"{group}/nextcloud/init.yml", nextcloud_vars(answers)),
        File(f"{group}/postgresql/init.yml", postgresql_vars(answers)),
        File(f"{group}/redis/init.yml", redis_vars(answers)),
        File(f"{group}/data_rights/init.yml", data_rights_vars(answers)),
        File(f"{group}/backup/init.yml", backup_vars(answers)),
    ]
    if answers.backup_host is not None:
        files.append(File(f"{group}/backup_target/init.yml", backup_target_vars(answers)))
    if answers.regional:
        files += [
            File(f"{group}/load_balancer/init.yml", load_balancer_vars(answers)),
            File(f"{group}/etcd/init.yml", etcd_vars(answers)),
        ]
    return files
