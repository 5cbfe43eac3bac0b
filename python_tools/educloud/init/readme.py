"""The folder's README.md, in French, for the operator: what each file is, what is left to
do before the first deploy, and the next commands."""

from __future__ import annotations

import ipaddress
import textwrap
from collections.abc import Mapping

from educloud.init import places as folder
from educloud.init.answers import Answers
from educloud.init.places import Places
from educloud.netpin import ALLOWED_TARGETS


def next_commands(places: Places, answers: Answers) -> list[str]:
    """The commands that follow `educloud init` (absolute paths: the educloud commands read
    a relative inventory path from the repository's root). Servers outside loopback and
    the lab's range need verify's --allow-public-targets (educloud.netpin)."""
    inventory = places.under_root(folder.INVENTORY)
    backup = (answers.backup_host,) if answers.backup_host else ()
    addresses = [h.address for h in (*answers.hosts, *backup)]
    public = any(
        not any(ipaddress.ip_address(a) in net for net in ALLOWED_TARGETS) for a in addresses
    )
    return [
        f"educloud deploy --inventory {inventory}",
        f"educloud verify --inventory {inventory}" + (" --allow-public-targets" if public else ""),
    ]


def _certificates(answers: Answers, places: Places) -> str:
    names = ", ".join(f"`{name}`" for name in answers.sites)
    if answers.certificates == "internal":
        return (
            "Source : **autorité de certification interne** (`--certificates internal`).\n"
            f"Le premier déploiement la crée dans `{folder.CA_DIR}/` (sa clé privée : gardez\n"
            "ce dossier avec le mot de passe du coffre, dans vos sauvegardes hors ligne) et\n"
            f"copie son certificat dans `{folder.CA_EXPORT}`. Faites-le approuver par les\n"
            "navigateurs des écoles (GPO, MDM ou installation manuelle) : sans cela, les\n"
            "utilisateurs voient une alerte de sécurité. Elle ne signe que les noms des sites\n"
            "de ce déploiement, pour des serveurs TLS seulement (contraintes de nom).\n"
        )
    if answers.certificates == "files":
        base = places.under_root(folder.CERTIFICATES)
        return (
            "Source : **fichiers de votre fournisseur de certificats** (`--certificates files`).\n"
            f"Pour chacun des noms {names}, déposez dans `{base}/` la chaîne\n"
            "`NOM.crt` (certificat puis intermédiaires, PEM) et la clé `NOM.key`. Chiffrez la clé\n"
            "avec le coffre :\n\n"
            "```sh\n"
            f"ansible-vault encrypt --vault-password-file {places.under_root(folder.PASSWORD)} "
            f"{base}/NOM.key\n"
            "```\n\n"
            "Renouvelez-les avant leur expiration puis relancez `educloud deploy`.\n"
        )
    return (
        "Source : **ACME** (`--certificates acme`), auprès de l'autorité\n"
        f"`{answers.acme_directory}` dont vous acceptez les conditions d'utilisation.\n"
        "Le pare-feu des serveurs n'autorise que les destinations de `policies/egress.yml` :\n"
        f"l'autorité y est déclarée (destination `acme-ca`, adresse `{answers.acme_address}`,\n"
        "`--acme-address`) ; si elle change d'adresse, corrigez-la puis relancez\n"
        "`educloud init`. Il faut aussi des serveurs de noms (`--dns-server`). Les noms\n"
        "doivent pointer vers le serveur avant le déploiement (défi http-01 sur le port 80).\n"
    )


def _backups(answers: Answers) -> str:
    """Where the backups go, in the introduction."""
    if answers.backup_host is not None:
        return f"sauvegardes sur `{answers.backup_host.name}` ({answers.backup_host.address})"
    provider = answers.backup_provider
    assert provider is not None  # build() gives one of the two
    return f"sauvegardes chez un prestataire, `{provider.url}`"


def _provider_todo(answers: Answers, public_keys: Mapping[str, str] | None) -> str:
    """What the operator does at the backup provider before the first deploy."""
    provider = answers.backup_provider
    if provider is None:
        return ""
    text = "- **Sauvegardes chez le prestataire.** "
    if provider.kind == "sftp":
        keys = "\n".join(
            str((public_keys or {}).get(name, f"(clé de {name} : relancez educloud init)"))
            for name in answers.backup_clients
        )
        where = provider.path if provider.path.startswith("/") else f"~/{provider.path}"
        return text + (
            f"Installez sur le compte SFTP `{provider.user}` de\n"
            f"  `{provider.address}` (port {provider.port}, fichier `~/.ssh/authorized_keys`)\n"
            "  la clé publique de chaque serveur sauvegardé (chacun a son dépôt dans\n"
            f"  `{where}/NOM`) :\n\n"
            f"  ```\n{textwrap.indent(keys, '  ')}\n  ```\n\n"
            "  Vérifiez avec le prestataire que sa clé d'hôte est bien celle donnée à\n"
            "  `--backup-provider-host-key` : ssh refuse toute autre.\n"
        )
    return text + (
        f"Le compartiment `{provider.bucket}` de `{provider.address}`\n"
        f"  (port {provider.port}, HTTPS) reçoit un dépôt par serveur sauvegardé. Les clés\n"
        "  d'accès sont dans le coffre (`vault_backup_s3_access_key_id`,\n"
        "  `vault_backup_s3_secret_access_key`) : pour les changer, `ansible-vault edit`.\n"
    )


def _table() -> str:
    rows = [
        (f"{folder.INVENTORY}/hosts.yml", "les serveurs et leurs groupes"),
        (
            f"{folder.INVENTORY}/group_vars/*/init.yml",
            "les réglages de chaque groupe, écrits par `educloud init` (réécrits à chaque "
            "exécution)",
        ),
        (
            f"{folder.INVENTORY}/group_vars/*/local.yml",
            "vos propres réglages (à créer au besoin) : lus après `init.yml`, jamais modifiés "
            "par `educloud init`",
        ),
        (
            f"{folder.INVENTORY}/group_vars/reverse_proxy/privacy-notice.yml",
            "la notice de confidentialité (C6) : écrite une fois, **à relire et compléter**, "
            "ensuite à vous",
        ),
        (folder.VAULT, "le coffre Ansible Vault : mots de passe et clés générés (chiffré)"),
        (folder.ANSIBLE_CFG, "indique où est le mot de passe du coffre"),
        (
            folder.PASSWORD,
            "le mot de passe du coffre (lisible par vous seul) : **ne le perdez pas**",
        ),
        (
            f"{folder.POLICIES}/",
            "la copie des politiques de ce déploiement (hébergement, destinations réseau, "
            "durées de conservation) ; `educloud_policies_dir` la désigne",
        ),
        (
            folder.ANSWERS,
            "vos réponses (aucun secret) : `educloud init` les reprend à la prochaine exécution",
        ),
    ]
    lines = ["| chemin | contenu |", "|---|---|"]
    lines += [f"| `{path}` | {what} |" for path, what in rows]
    return "\n".join(lines)


def render(answers: Answers, places: Places, public_keys: Mapping[str, str] | None = None) -> str:
    """`public_keys`: the vault's backup public keys (to install at an SFTP provider)."""
    root = places.root
    vault = places.under_root(folder.VAULT)
    password = places.under_root(folder.PASSWORD)
    auth, admin, cloud = answers.sites
    front = answers.floating_address if answers.regional else answers.hosts[0].address
    servers = ", ".join(f"`{h.name}` ({h.address})" for h in answers.hosts)
    commands = "\n".join(next_commands(places, answers))
    missing_network = ""
    if not answers.dns_servers or not answers.ntp_servers:
        missing_network = (
            "- **Serveurs de noms et de temps.** Le pare-feu sortant des serveurs refuse tout ce\n"
            "  que `policies/egress.yml` ne liste pas : déclarez vos résolveurs DNS et serveurs\n"
            "  NTP (`educloud init "
            f"{root} --dns-server ADRESSE --ntp-server ADRESSE`), sinon les noms\n"
            "  ne se résolvent pas et l'horloge dérive.\n"
        )
    return f"""# Déploiement educloud : {answers.organisation}

Ce dossier a été écrit par `educloud init` (profil `{answers.profile}`) à partir de vos
réponses. Il contient tout ce qu'il faut pour déployer educloud sur vos serveurs
({servers}, {_backups(answers)})
puis vérifier la charte.

## Ce que contient ce dossier

{_table()}

## À faire avant le premier déploiement

- **Accès SSH.** Chaque serveur est une Debian 12 joignable en SSH par clé, en
  `{answers.ssh_user}`, depuis cette machine. Connectez-vous une première fois à chacun
  (`ssh {answers.ssh_user}@ADRESSE`) pour enregistrer sa clé d'hôte : Ansible refuse un hôte
  inconnu.
- **Paquets Debian.** Le pare-feu des serveurs n'autorise que le miroir
  `{answers.apt_mirror.url}` : configurez apt sur chaque serveur pour l'utiliser
  (`Acquire::http::Proxy` pour un proxy apt-cacher-ng, ou `sources.list` pour un miroir).
- **Archives des logiciels.** Déposez sur le miroir `{answers.artifact_mirror.url}/` l'archive
  de Keycloak `keycloak-quarkus-dist-VERSION.zip` (la version et son SHA-256 sont dans
  `roles/keycloak/defaults/main.yml`). Pour Nextcloud, donnez l'archive au déploiement :
  `EDUCLOUD_NEXTCLOUD_ARCHIVE=… EDUCLOUD_NEXTCLOUD_ARCHIVE_SHA256=… educloud deploy …`
  (voir `docs/nextcloud.md`).
- **DNS.** Faites pointer `{auth}`, `{admin}` et `{cloud}` vers {front}. Le site
  d'administration `{admin}` ne répond qu'aux réseaux d'administration.
- **Notice de confidentialité.** Relisez avec votre délégué à la protection des données
  `{folder.INVENTORY}/group_vars/reverse_proxy/privacy-notice.yml` (`reverse_proxy_privacy_notice` :
  responsable du traitement, adresse, finalités, personnes concernées, destinataires).
{_provider_todo(answers, public_keys)}{missing_network}
### Certificats

{_certificates(answers, places)}
## Déployer puis vérifier

Depuis le dépôt educloud (avec son environnement : `export PATH=$PWD/.venv/bin:$PATH`) :

```sh
{commands}
```

`educloud deploy` applique les rôles ; `educloud verify` vérifie chaque garantie de la
charte (C1 à C13) sur vos serveurs et écrit le rapport de conformité en français.
Vérifiez avant d'ouvrir le service aux écoles.

## Secrets

Les secrets sont générés dans le coffre, jamais affichés. Pour en lire un (par exemple le
mot de passe initial de l'administrateur de la plateforme, `admin-plateforme`, qui est
`vault_keycloak_admin_password` ; il configure son OTP à la première connexion) :

```sh
ansible-vault view --vault-password-file {password} {vault}
```

Gardez une copie du mot de passe du coffre et du coffre hors de ces serveurs : sans eux,
les sauvegardes ne peuvent pas être relues (`vault_backup_repository_password`).

## Modifier une réponse

Relancez `educloud init {root}` avec la réponse qui change (par exemple
`--smtp-relay 192.0.2.25:587`) ; `--check` montre d'abord ce qui serait écrit. Les autres
réponses sont reprises de `{folder.ANSWERS}`. Les secrets existants et le mot de passe du
coffre ne sont jamais remplacés ; seuls les fichiers écrits par `educloud init` changent
(`init.yml`, `hosts.yml`, et dans `policies/egress.yml` les destinations de vos réponses).
"""
