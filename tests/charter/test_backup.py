"""Backups (issue #8): kept in France on another host (C1), expired on time (C7),
unreadable where they are stored, and out of reach of the server they protect (C10).

Each backup host's agent settings (/etc/educloud/backup/backup.json, written by the backup
role) and status file are read on the host; each backup target is searched for anything
but ciphertext. The restore itself is proved by `educloud backup drill`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from educloud.backup import compliance, probe
from educloud.backup import status as backup_status
from educloud.deployment.model import Deployment
from educloud.policy import Policies

CONFIG = "/etc/educloud/backup/backup.json"
# A nightly backup: its timer's random delay and an hour of grace beside the day.
LAST_BACKUP_AT_MOST = timedelta(hours=26)
TIMER = "educloud-backup.timer"
# Where a target keeps its repositories (the backup_target role's base directory).
CHROOT = "/srv/educloud-backup"
# The only command a client's key may run on the target (the backup_target role's
# authorized_keys): restic's REST protocol on the SSH channel, append-only, its repository.
FORCED_COMMAND = re.compile(
    r'^restrict(,from="[^"]+")?,command="(?P<rclone>/\S*rclone) serve restic --stdio '
    r'--append-only --config /dev/null (?P<repository>/[^" ]+)" (ssh-|ecdsa-|sk-)'
)
# Where a copy of a secret could sit on a target (its whole system but /usr and the
# kernel's pseudo file systems).
SEARCHED = ("/etc", "/home", "/opt", "/root", "/srv", "/tmp", "/usr/local", "/var")  # noqa: S108


# How the report names each kind of destination (roles/backup, backup_destination).
KIND_FR = {
    "target": "serveur de sauvegarde de l'inventaire, ajout seul",
    "sftp": "compte SFTP chez un hébergeur",
    "s3": "stockage objet S3 chez un hébergeur",
}


def _resolved(host: Any, found: compliance.Endpoint | None) -> list[str]:
    """The addresses the backed-up host itself finds for an S3 endpoint given by name (its
    /etc/hosts pin or its resolver): where its connections go."""
    if found is None or found.kind != "s3" or not found.named:
        return []
    answer = host.run("getent ahosts %s", found.host)
    return sorted({line.split()[0] for line in answer.stdout.splitlines() if line.split()})


def _config(connect: Callable[[str], Any], name: str) -> dict[str, Any]:
    found = connect(name).file(CONFIG)
    if not found.exists:
        pytest.fail(f"{name}: {CONFIG} is missing: the backup role is not deployed there")
    data: dict[str, Any] = json.loads(found.content_string)
    return data


@pytest.mark.charter("C1")
def test_backups_stored_in_france_on_another_host(
    backup_host_name: str,
    deployment: Deployment,
    policies: Policies,
    connect: Callable[[str], Any],
    evidence: Callable[[str], None],
) -> None:
    config = _config(connect, backup_host_name)
    host = connect(backup_host_name)
    own = set(host.check_output("hostname -I").split())
    own.add(deployment.host(backup_host_name).address)
    found_endpoint, _ = compliance.endpoint(config)
    resolved = _resolved(host, found_endpoint)
    found, problems = compliance.target_destinations(config, policies, resolved)
    problems += compliance.not_on_itself(config, own, resolved)
    evidence(
        f"{backup_host_name} : dépôt {config.get('repository')} ("
        + (KIND_FR.get(found_endpoint.kind, found_endpoint.kind) if found_endpoint else "?")
        + ") ; destination "
        + (
            ", ".join(f"{d.name} ({d.purpose}, {d.country})" for d in found)
            or "non déclarée dans policies/egress.yml"
        )
        + f" ; adresses de l'hôte : {', '.join(sorted(own))} ; destination jointe "
        + (f"{found_endpoint.host}:{found_endpoint.port}" if found_endpoint else "?")
        + (f" ({', '.join(resolved)})" if resolved else "")
    )
    assert not problems, "; ".join(problems)


@pytest.mark.charter("C7")
def test_backups_run_daily_and_expire_on_time(
    backup_host_name: str,
    policies: Policies,
    connect: Callable[[str], Any],
    evidence: Callable[[str], None],
) -> None:
    """The timer runs the backup; its last run succeeded; nothing in the repository is
    older than the backups period of retention.yml (the operators' `educloud backup forget`
    applies it: the backup host may only append); the agent's horizons are the policy's."""
    category = policies.retention["backups"]
    days = int(category["retention_days"])
    target = connect(backup_host_name)
    config = _config(connect, backup_host_name)
    timer = target.service(TIMER)
    problems = compliance.keep_problems(config, category)
    if not (timer.is_enabled and timer.is_running):
        problems.append(f"{TIMER} is not enabled and waiting")
    state_dir = str(config.get("state_dir") or "/var/lib/educloud-backup")
    status_file = target.file(f"{state_dir}/status.json")
    if not status_file.exists:
        evidence(f"{backup_host_name} : aucune sauvegarde encore faite ({status_file.path})")
        pytest.fail(f"{backup_host_name}: no backup has run yet ({status_file.path})")
    reported = backup_status.parse_status(status_file.content_string, status_file.path)
    # Observed: the snapshots as the repository lists them (restic, through the agent),
    # not as the agent's status file says.
    listing = target.run("educloud-backup --config %s snapshots", CONFIG)
    if listing.rc != 0:
        pytest.fail(
            f"{backup_host_name}: cannot list the repository's snapshots: "
            f"{listing.stderr.strip()[-300:]}"
        )
    observed = backup_status.parse_snapshots(json.loads(listing.stdout), "restic snapshots")
    found = dataclasses.replace(reported, snapshots=observed)
    now = datetime.now(UTC)
    review = backup_status.review(found, days, now)
    run = found.last_run
    newest = found.newest
    oldest = f"{review.oldest.time:%Y-%m-%d %H:%M} UTC" if review.oldest else "aucun"
    evidence(
        f"{backup_host_name} : {TIMER} {'activé' if timer.is_enabled else 'désactivé'} ; "
        f"dernier passage {'réussi' if run and run.ok else 'en échec'} "
        f"({run.finished if run else 'jamais'}) ; {review.count} instantanés dans le dépôt, "
        f"le plus récent {f'{newest.time:%Y-%m-%d %H:%M} UTC' if newest else 'aucun'}, "
        f"le plus ancien {oldest} ; {len(review.past)} au-delà de {days} jours ; conservation : "
        f"{json.dumps(config.get('keep'), sort_keys=True)}"
    )
    if run is None or not run.ok:
        problems.append(f"the last backup failed: {run.error if run else 'never ran'}")
    if newest is None or now - newest.time > LAST_BACKUP_AT_MOST:
        problems.append(
            "no snapshot in the repository from the last "
            f"{LAST_BACKUP_AT_MOST.total_seconds() / 3600:.0f} hours"
            + (f" (newest {newest.time:%Y-%m-%d %H:%M} UTC)" if newest else "")
        )
    if review.overdue:
        problems.append(
            f"snapshots older than {days} days not forgotten: "
            + ", ".join(f"{s.short_id} ({s.time:%Y-%m-%d})" for s in review.overdue)
        )
    assert not problems, "; ".join(problems)


def _repositories(target: Any) -> list[str]:
    listing = target.run("find %s -mindepth 2 -maxdepth 3 -type f -name config", CHROOT)
    return sorted(line.rsplit("/", 1)[0] for line in listing.stdout.split())


@pytest.mark.charter("C10")
def test_backup_repositories_hold_only_ciphertext(
    backup_target_host_name: str,
    connect: Callable[[str], Any],
    evidence: Callable[[str], None],
) -> None:
    """restic encrypts everything it writes (AES-256, Poly1305): its config, the index,
    the snapshots and the packs. No known plaintext of the data appears in them."""
    target = connect(backup_target_host_name)
    repositories = _repositories(target)
    if not repositories:
        pytest.fail(f"{backup_target_host_name}: no restic repository under {CHROOT}")
    problems = []
    for repository in repositories:
        config = target.file(f"{repository}/config").content
        if compliance.plaintext_config(config):
            problems.append(f"{repository}/config is readable JSON: not encrypted")
        patterns = " ".join(f"-e '{text}'" for text in compliance.KNOWN_PLAINTEXT)
        hits = target.run(
            f"grep -rlaF {patterns} {repository}/data {repository}/index {repository}/snapshots"
        )
        size = target.run("du -sh %s", repository).stdout.split()
        evidence(
            f"{backup_target_host_name} : {repository} ({size[0] if size else '?'}) : config "
            f"chiffré ({len(config)} octets) ; texte en clair recherché "
            f"({', '.join(compliance.KNOWN_PLAINTEXT)}) : "
            + ("trouvé dans " + ", ".join(hits.stdout.split()[:3]) if hits.rc == 0 else "absent")
        )
        if hits.rc == 0:
            problems.append(f"plaintext in {repository}: {', '.join(hits.stdout.split()[:5])}")
        elif hits.rc != 1:
            problems.append(f"cannot search {repository}: {hits.stderr.strip()[-200:]}")
    assert not problems, "; ".join(problems)


# Packs read per host: each is one restic command (the repository's key derived again, and
# for a target or an SFTP account one SSH session), about 3 s through the target's forced
# command in the lab. At a provider, this scan is the only view of the storage: up to
# SCAN_PACKS. On the inventory's target, test_backup_repositories_hold_only_ciphertext
# searches every file of every repository on its disk: a sample confirms the protocol's view.
SCAN_PACKS = 40
SCAN_TARGET_PACKS = 3


@pytest.mark.charter("C10")
def test_backup_packs_hold_only_ciphertext_as_the_destination_serves_them(
    backup_host_name: str,
    connect: Callable[[str], Any],
    evidence: Callable[[str], None],
) -> None:
    """Whatever the destination (the inventory's target, a provider's SFTP account or its
    object storage), the packs it serves, read raw through the host's own access, hold
    neither known plaintext of the data nor a backup secret. For a provider, the only
    view of the storage there is: its disks are out of reach. The evidence says how many
    packs were read of how many (SCAN_PACKS)."""
    config = _config(connect, backup_host_name)
    found, _ = compliance.endpoint(config)
    s3 = config.get("s3") or {}
    patterns = compliance.scan_patterns_command(
        str(config.get("password_file") or ""),
        str(s3.get("credentials_file") or ""),
        str(config.get("ssh_key") or ""),
    )
    host = connect(backup_host_name)
    with host.sudo():
        # No arguments to host.run: it would %-format the command, printf's '%s' included.
        limit = SCAN_TARGET_PACKS if found is not None and found.kind == "target" else SCAN_PACKS
        answer = host.run(
            f"{patterns} | educloud-backup --config {CONFIG} scan --max-packs {limit}"
        )
    if answer.rc != 0:
        pytest.fail(f"{backup_host_name}: the scan of the packs failed: {answer.stderr[-300:]}")
    report = json.loads(answer.stdout)
    known = len(compliance.KNOWN_PLAINTEXT)
    hits = [
        f"{hit['pack'][:12]} ("
        + (compliance.KNOWN_PLAINTEXT[hit["pattern"]] if hit["pattern"] < known else "un secret")
        + ")"
        for hit in report["hits"]
    ]
    evidence(
        f"{backup_host_name} : {KIND_FR.get(found.kind, found.kind) if found else '?'} ; "
        f"{report['scanned']} paquets lus bruts sur {report['packs']} "
        f"({report['bytes'] // 1024} Kio) ; texte en clair recherché "
        f"({', '.join(compliance.KNOWN_PLAINTEXT)}) et secrets de la sauvegarde : "
        + (f"trouvés dans {', '.join(hits[:5])}" if hits else "absents")
    )
    assert report["packs"] > 0, f"{backup_host_name}: the repository has no pack"
    assert not hits, f"plaintext or a secret in {backup_host_name}'s packs: {', '.join(hits)}"


def private_key_material(key_lines: list[str]) -> list[str]:
    """Lines of an OpenSSH private key that belong to this key alone. The first base64 line
    is the format's header, the same in every unencrypted key of a type (it would match the
    target's own host keys); the following ones hold the key's public and private parts."""
    body = [line.strip() for line in key_lines if line.strip() and not line.startswith("-----")]
    return [line for line in body[1:] if len(line) >= 16]


def _search_target_for_secrets(
    deployment: Deployment, connect: Callable[[str], Any], target_name: str
) -> subprocess.CompletedProcess[str]:
    """grep on the target for each backup host's repository password and the body of its
    SSH private key, given on grep's stdin (never on a command line). The secrets stay in
    this frame, out of any failure report."""
    lines = []
    for client in deployment.in_group("backup"):
        config = _config(connect, client.name)
        host = connect(client.name)
        lines.append(host.check_output("cat %s", str(config["password_file"])).strip())
        if config.get("ssh_key"):  # none for object storage
            key = host.check_output("cat %s", str(config["ssh_key"])).splitlines()
            lines += private_key_material(key)
    return subprocess.run(
        [
            *deployment.host(target_name).ssh_argv(),
            "--",
            f"grep -rlsF -D skip -f - {' '.join(SEARCHED)}",
        ],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.charter("C10")
def test_backup_secrets_are_not_on_the_target(
    backup_target_host_name: str,
    deployment: Deployment,
    connect: Callable[[str], Any],
    evidence: Callable[[str], None],
) -> None:
    """Whoever holds the target holds ciphertext only: the repository password (which
    decrypts restic's key file there) and the clients' SSH private key are on the backup
    hosts and in Ansible Vault, never on the target."""
    clients = deployment.in_group("backup")
    if not clients:
        pytest.fail("no host in the backup group")
    done = _search_target_for_secrets(deployment, connect, backup_target_host_name)
    found = ", ".join(done.stdout.split()[:3])
    evidence(
        f"{backup_target_host_name} : mot de passe des dépôts et clé privée SSH de "
        f"{', '.join(c.name for c in clients)} recherchés dans {' '.join(SEARCHED)} : "
        + (f"trouvés dans {found}" if done.returncode == 0 else "absents")
    )
    address = deployment.host(backup_target_host_name).address
    assert done.returncode != 255, f"ssh to {address} failed: {done.stderr.strip()[-200:]}"
    assert done.returncode == 1, (
        f"a backup secret is on {backup_target_host_name}: {found}"
        if done.returncode == 0
        else f"grep failed on {backup_target_host_name}: {done.stderr.strip()[-200:]}"
    )


@pytest.mark.charter("C10")
def test_every_data_host_is_backed_up(
    deployment: Deployment, evidence: Callable[[str], None]
) -> None:
    holders = {h.name for g in compliance.DATA_GROUPS for h in deployment.in_group(g)}
    backed_up = {h.name for h in deployment.in_group("backup")}
    evidence(
        f"hôtes de données : {', '.join(sorted(holders)) or 'aucun'} ; sauvegardés : "
        f"{', '.join(sorted(backed_up)) or 'aucun'}"
    )
    missing = sorted(holders - backed_up)
    assert not missing, f"not in the backup group: {', '.join(missing)}"


def _target_of(deployment: Deployment, config: dict[str, Any]) -> str:
    address = (config.get("target") or {}).get("address")
    for host in deployment.in_group("backup_target"):
        if host.address == address:
            return host.name
    pytest.fail(f"the backup target {address} is not a host of the backup_target group")


def _key_lines(target: Any, account: str) -> tuple[list[str], list[str]]:
    """Every authorized key line sshd reads for `account` (each AuthorizedKeysFile, as
    sshd -T resolves them for it), and the files read."""
    home = target.user(account).home
    effective = target.check_output(
        "sshd -T -C user=%s,host=client.invalid,addr=192.0.2.1", account
    ).splitlines()
    settings = dict(line.split(" ", 1) for line in effective if " " in line)
    if settings.get("authorizedkeyscommand", "none") != "none":
        pytest.fail(f"sshd asks a command for {account}'s keys: not readable here")
    files = []
    for name in settings.get("authorizedkeysfile", ".ssh/authorized_keys").split():
        name = name.replace("%h", home).replace("%u", account).replace("%%", "%")
        files.append(name if name.startswith("/") else f"{home}/{name}")
    lines = []
    for name in files:
        found = target.file(name)
        if found.exists:
            lines += [
                line.strip()
                for line in found.content_string.splitlines()
                if line.strip() and not line.lstrip().startswith("#")
            ]
    return lines, files


def _account_problems(target: Any, account: str, client: str) -> list[str]:
    """What lets the client's account do more than append to its own repository."""
    problems = []
    lines, files = _key_lines(target, account)
    if not lines:
        problems.append(f"no key for {account} in {', '.join(files)}")
    for line in lines:
        match = FORCED_COMMAND.match(line)
        if match is None:
            problems.append(
                f"a key of {account} is not forced to rclone serve restic --append-only: "
                f"{line[:120]}"
            )
        elif match["repository"].rstrip("/").rsplit("/", 1)[-1] != client:
            problems.append(f"{account}'s key serves {match['repository']}, not {client}'s")
    effective = target.check_output(
        "sshd -T -C user=%s,host=client.invalid,addr=192.0.2.1", account
    ).splitlines()
    settings = dict(line.split(" ", 1) for line in effective if " " in line)
    if settings.get("forcecommand", "none") != "none":
        problems.append(
            f"sshd forces {settings['forcecommand']} on {account}, replacing its key's command"
        )
    base = target.file(f"{CHROOT}/repos")
    if base.exists and (base.user != "root" or base.mode & 0o022):
        problems.append(
            f"{CHROOT}/repos is {base.user}:{base.group} {oct(base.mode)}: others can create "
            "or replace repositories there"
        )
    return problems


@pytest.mark.charter("C10")
def test_backup_clients_cannot_delete_or_rewrite_their_backups(
    backup_host_name: str,
    deployment: Deployment,
    connect: Callable[[str], Any],
    evidence: Callable[[str], None],
) -> None:
    """Ransomware on a backup host holds its key: that key must only append. Read: every
    key line sshd reads for the host's account on the target is forced to
    `rclone serve restic --stdio --append-only` on the host's own repository, and no sshd
    Match block replaces that command. Observed: as root on the backup host, with its own
    key, deleting, overwriting and truncating a snapshot, a pack, an index, the key and the
    config of its repository, and reading another client's, are all refused, and the
    repository is unchanged afterwards."""
    config = _config(connect, backup_host_name)
    found, _ = compliance.endpoint(config)
    if found is not None and found.kind != "target":
        evidence(
            f"{backup_host_name} : {KIND_FR[found.kind]} : l'hôte peut y effacer ses "
            "sauvegardes (et celles des hôtes qui partagent le compte ou les clés), l'ajout "
            "seul ne s'impose pas depuis le déploiement"
        )
        pytest.skip(
            f"{backup_host_name} sauvegarde vers un {KIND_FR[found.kind]} : l'ajout seul "
            "(protection contre un rançongiciel sur le serveur) n'y est pas vérifiable "
            "depuis le déploiement ; à obtenir du fournisseur (verrouillage des objets, "
            "instantanés de son côté) et à attester"
        )
    account = str((config.get("target") or {}).get("user") or "")
    target_name = _target_of(deployment, config)
    target = connect(target_name)
    problems = _account_problems(target, account, backup_host_name)
    others = [h.name for h in deployment.in_group("backup") if h.name != backup_host_name]
    with connect(backup_host_name).sudo():
        answer = connect(backup_host_name).run(
            probe.command(CONFIG, others[0] if others else "another-client")
        )
    if answer.rc != 0:
        pytest.fail(f"{backup_host_name}: the append-only probe failed: {answer.stderr[-300:]}")
    result = probe.parse(answer.stdout)
    refused = [a for a in result.attempts if a.get("status") is not None]
    evidence(
        f"{backup_host_name} → {target_name} : compte {account} ; clés lues et commande forcée "
        f"{'conformes' if not problems else 'NON conformes'} ; sonde avec la clé de l'hôte : "
        f"{len(refused)} tentatives (suppression, réécriture, troncature, accès à un autre "
        f"dépôt), {len(result.succeeded)} acceptées ; dépôt "
        f"{'inchangé' if result.unchanged else 'MODIFIÉ'} ({result.objects})"
    )
    problems += result.problems
    if result.untried:
        problems.append(
            "not tried (nothing of that kind in the repository): " + ", ".join(result.untried)
        )
    assert not problems, "; ".join(problems)
