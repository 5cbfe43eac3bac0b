"""`educloud init DIR --profile single|regional`: parse the answers, ask on a terminal for
what is missing, print the plan, apply it (educloud.init). No logic of its own.

Every answer has a flag; a rerun takes the folder's saved answers for those not given.
Without a terminal, a missing answer is refused with one line naming the flags to give.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from educloud.deployment import secrets as vault_secrets
from educloud.errors import EducloudError
from educloud.init import answers as answers_mod
from educloud.init import readme, write
from educloud.init.answers import Raw, RawValue
from educloud.init.places import README, Places
from educloud.init.questions import PROFILES, Question

# Whole lines (paths and commands to copy), never wrapped at the terminal's width.
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

Text = str | None
Many = list[str] | None


def _interactive() -> bool:
    return sys.stdin.isatty()


def _ask(question: Question) -> RawValue:
    """Ask until the answer is valid (a terminal only)."""
    while True:
        value = typer.prompt(question.prompt)
        raw: RawValue = answers_mod.split_many(value) if question.many else value
        try:
            return answers_mod.normalize_one(question.key, raw)
        except ValueError as exc:
            err_console.print(f"{question.flag}: {exc}", markup=False)


def _profile(given: str | None, saved: str | None) -> str:
    profile = given or saved
    if profile is None:
        if not _interactive():
            raise EducloudError("--profile is missing (single or regional; no terminal to ask on)")
        profile = typer.prompt("Profile: single (one server) or regional")
    if profile not in PROFILES:
        raise EducloudError(f"--profile {profile!r}: choose single or regional")
    return profile


def _complete(raw: Raw, profile: str) -> Raw:
    missing = answers_mod.missing(raw, profile)
    if missing and not _interactive():
        flags = ", ".join(
            f"{q.flag} or --backup-provider" if q.key == "backup_host" else q.flag for q in missing
        )
        raise EducloudError(f"missing answers (no terminal to ask on): give {flags}")
    for question in missing:
        raw[question.key] = _ask(question)
        if question.key == "certificates":
            return _complete(raw, profile)  # acme brings its directory's question
    return raw


def _provided(names: tuple[str, ...]) -> dict[str, str]:
    """Secrets only the operator has (a provider's credentials): from the environment, or
    asked without echo on a terminal."""
    found = {}
    for name in names:
        variable = vault_secrets.provided_env(name)
        if os.environ.get(variable):
            found[name] = os.environ[variable]
        elif _interactive():
            found[name] = typer.prompt(f"{name} (not echoed)", hide_input=True)
    return found


def _print_plan(plan: write.Plan, everything: bool) -> None:
    """Each file and what happens to it (`everything`: the unchanged ones too)."""
    shown = [c for c in plan.changes if everything or c.action != write.UNCHANGED]
    width = max(len(action) for action in (*write.WRITES, write.UNCHANGED, write.KEPT))
    for change in shown:
        note = f"  ({change.note})" if change.note else ""
        console.print(f"{change.action:<{width}}  {change.path}{note}", markup=False)
    if not everything:
        same = len(plan.changes) - len(shown)
        console.print(f"{same} file(s) unchanged", markup=False)
    for warning in plan.warnings:
        err_console.print(f"warning: {warning}", markup=False)


def init(
    directory: Annotated[
        Path, typer.Argument(help="The deployment's folder (created when missing).")
    ],
    profile: Annotated[
        Text, typer.Option(help="single (one server) or regional (docs/regional.md).")
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="Print the plan, write nothing.")] = False,
    policies: Annotated[
        Path | None,
        typer.Option(
            "--policies",
            help="The policies to copy (default: the repository's policies/); an existing "
            "copy in the folder is kept.",
        ),
    ] = None,
    public_domain: Annotated[
        Text, typer.Option(help="The public domain: sites auth., auth-admin. and cloud.<domain>.")
    ] = None,
    organisation: Annotated[
        Text, typer.Option(help="The organisation running the service (privacy notice).")
    ] = None,
    postal_address: Annotated[
        Text, typer.Option(help="Its postal address, lines separated by ';'.")
    ] = None,
    host: Annotated[
        Many,
        typer.Option(
            "--host",
            help="A server, NAME=ADDRESS (repeatable; regional: lb1, kc1, nc1, db1... by tier).",
        ),
    ] = None,
    backup_host: Annotated[
        Text, typer.Option(help="The backup server (another Debian 12), NAME=ADDRESS.")
    ] = None,
    backup_provider: Annotated[
        Text,
        typer.Option(
            # Rich reads the help as markup: "[/PREFIX]" would close a tag never opened.
            help="Backups at a provider instead of --backup-host: "
            "sftp://USER@ADDRESS\\[:PORT]/PATH or s3://ADDRESS\\[:PORT]/BUCKET\\[/PREFIX]."
        ),
    ] = None,
    backup_provider_host_key: Annotated[
        Text, typer.Option(help="sftp: the provider's server host key, 'ssh-ed25519 AAAA...'.")
    ] = None,
    backup_provider_name: Annotated[
        Text, typer.Option(help="s3: the name the endpoint's certificate gives.")
    ] = None,
    backup_provider_ca: Annotated[
        Text, typer.Option(help="s3: PEM file of the endpoint's CA (default: Debian's CAs).")
    ] = None,
    backup_provider_credentials: Annotated[
        Path | None,
        typer.Option(
            help="s3: file with AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=... lines "
            "(into the vault, once)."
        ),
    ] = None,
    floating_address: Annotated[
        Text, typer.Option(help="Regional: the load balancers' floating address.")
    ] = None,
    provider: Annotated[Text, typer.Option(help="Hosting provider id (hosting.yml).")] = None,
    country: Annotated[Text, typer.Option(help="Country code (default: the provider's).")] = None,
    datacenter: Annotated[Text, typer.Option(help="Datacenter id (hosting.yml).")] = None,
    admin_network: Annotated[
        Many, typer.Option("--admin-network", help="Administrators' network, CIDR (repeatable).")
    ] = None,
    apt_mirror: Annotated[
        Text,
        typer.Option(
            "--apt-mirror", "--apt-proxy", help="Debian mirror or apt proxy URL, by IP address."
        ),
    ] = None,
    artifact_mirror: Annotated[
        Text, typer.Option(help="Internal mirror of Keycloak's release archive, by IP address.")
    ] = None,
    smtp_relay: Annotated[Text, typer.Option(help="Mail relay, ADDRESS[:PORT] (25).")] = None,
    smtp_starttls: Annotated[
        bool | None, typer.Option("--smtp-starttls/--no-smtp-starttls", help="Default: on.")
    ] = None,
    mail_sender: Annotated[
        Text, typer.Option(help="Sender of the alerts (default: ne-pas-repondre@<domain>).")
    ] = None,
    operator_email: Annotated[Text, typer.Option(help="The administrators' address.")] = None,
    dpo_email: Annotated[Text, typer.Option(help="The data protection officer's address.")] = None,
    reporting_email: Annotated[
        Text, typer.Option(help="Where illicit content is reported (default: operator's).")
    ] = None,
    certificates: Annotated[Text, typer.Option(help="files, acme or internal.")] = None,
    acme_directory: Annotated[Text, typer.Option(help="The ACME directory URL.")] = None,
    acme_address: Annotated[
        Text, typer.Option(help="The ACME CA's address or network (declared in egress.yml).")
    ] = None,
    realm: Annotated[
        Text, typer.Option(help="Keycloak realm (default: the domain's first label).")
    ] = None,
    auth_name: Annotated[Text, typer.Option(help="Login site (default auth.<domain>).")] = None,
    auth_admin_name: Annotated[
        Text, typer.Option(help="Admin site (default auth-admin.<domain>).")
    ] = None,
    cloud_name: Annotated[
        Text, typer.Option(help="Nextcloud site (default cloud.<domain>).")
    ] = None,
    dns_server: Annotated[
        Many, typer.Option("--dns-server", help="Name server address (repeatable).")
    ] = None,
    ntp_server: Annotated[
        Many, typer.Option("--ntp-server", help="Time server address (repeatable).")
    ] = None,
    ssh_user: Annotated[Text, typer.Option(help="SSH user (default root).")] = None,
    ssh_key: Annotated[Text, typer.Option(help="SSH private key file.")] = None,
    object_storage: Annotated[
        Text, typer.Option(help="Regional: S3 storage, ADDRESS[:PORT] (443).")
    ] = None,
    object_storage_bucket: Annotated[Text, typer.Option(help="Regional: its bucket.")] = None,
    object_storage_region: Annotated[
        Text, typer.Option(help="Regional: its region (default fr).")
    ] = None,
    vrrp_interface: Annotated[
        Text, typer.Option(help="Regional: the VRRP interface (default eth0).")
    ] = None,
) -> None:
    """Write a deployment's folder for your own servers: inventory, vault of generated
    secrets, copy of the policies, README (French). Idempotent; --check writes nothing.

    The credentials of the regional object storage are read from EDUCLOUD_NEXTCLOUD_S3_KEY
    and EDUCLOUD_NEXTCLOUD_S3_SECRET (or asked, not echoed); an s3 backup provider's from
    --backup-provider-credentials."""
    directory = directory.expanduser().resolve()
    saved_profile, saved = write.read_saved(directory)
    chosen = _profile(profile, saved_profile)
    flags: dict[str, RawValue | None] = {
        "public_domain": public_domain,
        "organisation": organisation,
        "postal_address": postal_address,
        "hosts": host,
        "backup_host": backup_host,
        "backup_provider": backup_provider,
        "backup_provider_host_key": backup_provider_host_key,
        "backup_provider_name": backup_provider_name,
        "backup_provider_ca": backup_provider_ca,
        "floating_address": floating_address,
        "provider": provider,
        "country": country,
        "datacenter": datacenter,
        "admin_networks": admin_network,
        "apt_mirror": apt_mirror,
        "artifact_mirror": artifact_mirror,
        "smtp_relay": smtp_relay,
        "smtp_starttls": smtp_starttls,
        "mail_sender": mail_sender,
        "operator_email": operator_email,
        "dpo_email": dpo_email,
        "reporting_email": reporting_email,
        "certificates": certificates,
        "acme_directory": acme_directory,
        "acme_address": acme_address,
        "realm": realm,
        "auth_name": auth_name,
        "auth_admin_name": auth_admin_name,
        "cloud_name": cloud_name,
        "dns_servers": dns_server,
        "ntp_servers": ntp_server,
        "ssh_user": ssh_user,
        "ssh_key": ssh_key,
        "object_storage": object_storage,
        "object_storage_bucket": object_storage_bucket,
        "object_storage_region": object_storage_region,
        "vrrp_interface": vrrp_interface,
    }
    given = {key: value for key, value in flags.items() if value is not None and value != []}
    raw = _complete(answers_mod.normalize(answers_mod.merged(saved, given), chosen), chosen)
    regional = chosen == "regional"
    provided = _provided(vault_secrets.provided(regional))
    if backup_provider_credentials is not None:
        if not str(raw.get("backup_provider", "")).startswith("s3://"):
            raise answers_mod.AnswerError(
                ["--backup-provider-credentials is for an s3 --backup-provider"]
            )
        provided |= answers_mod.read_credentials(backup_provider_credentials)
    plan = write.plan(directory, chosen, raw, policies, provided)
    _print_plan(plan, everything=check)
    if plan.missing_provided and not check:
        backup = [n for n in plan.missing_provided if n in vault_secrets.PROVIDED_BACKUP_S3]
        if backup:
            raise EducloudError(
                "--backup-provider-credentials is missing, nothing written: the vault has no "
                f"keys for the s3 provider ({', '.join(backup)}); give a file with "
                "AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=... lines"
            )
        names = ", ".join(vault_secrets.provided_env(n) for n in plan.missing_provided)
        raise EducloudError(f"the vault needs secrets only you have: set {names}")
    if check:
        console.print("--check: nothing written")
        return
    written = write.apply(plan)
    if written:
        console.print(f"wrote {len(written)} file(s) into {directory}", markup=False)
    else:
        console.print(f"nothing to write: {directory} is up to date", markup=False)
    places = Places.of(directory)
    console.print(f"before the first deploy, read {directory / README}; then:", markup=False)
    for command in readme.next_commands(places, plan.answers):
        console.print(f"  {command}", markup=False)
