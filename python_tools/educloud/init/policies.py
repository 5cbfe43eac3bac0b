"""The deployment's own copy of policies/, beside its inventory.

Every file is copied once from the source (the repository's policies/, or `--policies`) and
is then the deployment's: init never rewrites one, so an operator's edits (their provider
approved in hosting.yml, their retention periods) stay. The exception is egress.yml, where
init writes the destinations of the purposes it asks about (the package mirror, the artifact
mirror, the mail relay, the backup server or provider; name servers, time servers and the
object storage when given) from the answers, and keeps every other destination found there.

The whole copy, as it will be, is validated (educloud.policy) and the answers' hosting
declaration checked against it before anything is written.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from educloud import policy
from educloud.errors import EducloudError
from educloud.init.answers import AnswerError, Answers

EGRESS = "egress.yml"
EGRESS_HEADER = """\
# Where the servers may connect to (charter C5): this deployment's copy of policies/egress.yml.
# Every other connection is refused by each server's own firewall, and logged.
# 'educloud init' writes the destinations of the purposes it asks about (package_mirror,
# artifact_source, mail_relay, backup_target; dns, ntp and object_storage when given) from its
# answers, and keeps every other destination listed here (add yours below; comments are not
# kept). Addresses only: a firewall cannot follow DNS names.
"""


@dataclass(frozen=True)
class PolicyFile:
    path: str  # relative to the policies copy
    content: bytes
    managed: bool  # egress.yml: rewritten by init; else written once


def _destination(
    name: str, purpose: str, description: str, address: str, port: int, protocol: str, country: str
) -> dict[str, Any]:
    return {
        "name": name,
        "purpose": purpose,
        "description": description,
        "address": address,
        "port": port,
        "protocol": protocol,
        "country": country,
    }


def destinations(answers: Answers) -> list[dict[str, Any]]:
    """The egress destinations the answers declare, in a fixed order."""
    country = answers.country
    found = [
        _destination(
            "apt-mirror",
            "package_mirror",
            "Miroir des paquets Debian (apt)",
            answers.apt_mirror.address,
            answers.apt_mirror.port,
            "tcp",
            country,
        ),
        _destination(
            "artifact-mirror",
            "artifact_source",
            "Miroir interne des archives des logiciels déployés (Keycloak)",
            answers.artifact_mirror.address,
            answers.artifact_mirror.port,
            "tcp",
            country,
        ),
        _destination(
            "mail-relay",
            "mail_relay",
            "Relais de messagerie (échecs de sauvegarde, signalements aux modérateurs)",
            answers.smtp_relay.address,
            answers.smtp_relay.port,
            "tcp",
            country,
        ),
    ]
    provider = answers.backup_provider
    if provider is not None:
        what = (
            f"compte SFTP {provider.user}"
            if provider.kind == "sftp"
            else f"stockage objet S3, compartiment {provider.bucket}"
        )
        found.append(
            _destination(
                "backup-provider",
                "backup_target",
                f"Stockage des sauvegardes chiffrées chez un prestataire ({what})",
                provider.address,
                provider.port,
                "tcp",
                country,
            )
        )
    elif answers.backup_host is not None:
        found.append(
            _destination(
                "backup-target",
                "backup_target",
                f"Stockage des sauvegardes chiffrées (serveur {answers.backup_host.name}, SSH)",
                answers.backup_host.address,
                22,
                "tcp",
                country,
            )
        )
    if answers.object_storage is not None:
        found.append(
            _destination(
                "object-storage",
                "object_storage",
                "Stockage objet S3 des fichiers de Nextcloud",
                answers.object_storage.endpoint.address,
                answers.object_storage.endpoint.port,
                "tcp",
                country,
            )
        )
    if answers.certificates == "acme":
        directory = urlsplit(answers.acme_directory)
        found.append(
            _destination(
                "acme-ca",
                "acme_ca",
                f"Autorité de certification ACME ({directory.hostname}) : certificats TLS des "
                "sites (elle reçoit les noms des sites, aucune donnée des utilisateurs)",
                answers.acme_address,
                directory.port or 443,
                "tcp",
                country,
            )
        )
    for index, address in enumerate(answers.dns_servers, start=1):
        for protocol in ("udp", "tcp"):
            found.append(
                _destination(
                    f"dns-{index}-{protocol}",
                    "dns",
                    "Serveur de noms",
                    address,
                    53,
                    protocol,
                    country,
                )
            )
    for index, address in enumerate(answers.ntp_servers, start=1):
        found.append(
            _destination(f"ntp-{index}", "ntp", "Serveur de temps", address, 123, "udp", country)
        )
    return found


def _managed_purposes(answers: Answers) -> set[str]:
    purposes = {"package_mirror", "artifact_source", "mail_relay", "backup_target"}
    if answers.object_storage is not None:
        purposes.add("object_storage")
    if answers.dns_servers:
        purposes.add("dns")
    if answers.ntp_servers:
        purposes.add("ntp")
    if answers.certificates == "acme":
        purposes.add("acme_ca")
    return purposes


def egress(base: bytes, answers: Answers) -> bytes:
    """egress.yml from `base` (the copy's, or the source's when there is none yet): the
    answers' destinations, then every destination of another purpose found in `base`."""
    try:
        data = yaml.safe_load(base.decode("utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise EducloudError(f"{EGRESS}: not valid YAML ({exc})".replace("\n", " ")) from None
    listed = data.get("destinations") if isinstance(data, dict) else None
    managed = _managed_purposes(answers)
    ours = destinations(answers)
    names = {d["name"] for d in ours}
    kept = [
        d
        for d in (listed if isinstance(listed, list) else [])
        if isinstance(d, dict) and d.get("purpose") not in managed and d.get("name") not in names
    ]
    body = yaml.safe_dump(
        {"destinations": ours + kept}, sort_keys=False, allow_unicode=True, width=100
    )
    return (EGRESS_HEADER + body).encode("utf-8")


def copy(source: Path, existing: Path, answers: Answers) -> list[PolicyFile]:
    """The copy as it will be: each file of `source` (or the copy's own, when it has it),
    egress.yml with the answers' destinations."""
    if not (source / "hosting.yml").is_file():
        raise EducloudError(f"--policies {source}: not a policies folder (no hosting.yml)")
    files = []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        relative = path.relative_to(source).as_posix()
        if relative.startswith(".") or "/." in relative:
            continue
        mine = existing / relative
        base = mine.read_bytes() if mine.is_file() else path.read_bytes()
        if relative == EGRESS:
            files.append(PolicyFile(relative, egress(base, answers), managed=True))
        else:
            files.append(PolicyFile(relative, base, managed=False))
    return files


def hosting_answers(files: list[PolicyFile], answers: Answers) -> Answers:
    """The answers with the provider's country when none was given; a country hosting.yml
    does not allow is refused here, before it is written into every egress destination."""
    hosting = next((f for f in files if f.path == "hosting.yml"), None)
    try:
        data = yaml.safe_load(hosting.content) if hosting else {}
    except yaml.YAMLError:
        return answers  # the copy's validation says what is wrong with it
    data = data if isinstance(data, dict) else {}
    providers = data.get("providers")
    allowed = data.get("countries_allowed")
    allowed = [str(c) for c in allowed] if isinstance(allowed, list) else []
    country = answers.country
    if not country:
        for provider in providers if isinstance(providers, list) else []:
            if isinstance(provider, Mapping) and provider.get("id") == answers.provider:
                country = str(provider.get("country", ""))
        country = country or (allowed[0] if allowed else "FR")
    if allowed and country not in allowed:
        raise AnswerError(
            [
                f"--country: {country} is not allowed by hosting.yml (countries_allowed: "
                f"{', '.join(allowed)})"
            ]
        )
    return dataclasses.replace(answers, country=country)


def validate(files: list[PolicyFile], answers: Answers, where: Path, hint: str) -> list[str]:
    """Validate the copy as it will be (schemas, cross-references) and the answers' hosting
    declaration against it; returns warnings (a provider approved for tests only). Raises
    AnswerError (`hint`: how to approve a provider) or EducloudError naming what is wrong."""
    with tempfile.TemporaryDirectory(prefix="educloud-init-") as scratch:
        staged = Path(scratch) / "policies"
        for item in files:
            target = staged / item.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(item.content)
        try:
            loaded = policy.load(staged)
        except policy.PolicyError as exc:
            raise EducloudError(
                f"the policies copy {where} would not be valid, nothing written: "
                + "; ".join(str(p) for p in exc.problems)
            ) from None
    declaration = {
        "provider": answers.provider,
        "country": answers.country,
        "datacenter": answers.datacenter,
    }
    problems = policy.hosting_problems(loaded, declaration)
    if problems:
        raise AnswerError(
            [f"--provider/--country/--datacenter: {problem}" for problem in problems] + [hint]
        )
    provider = next(p for p in loaded.providers if p.id == answers.provider)
    if provider.test_only:
        return [
            f"provider {provider.id} ({provider.name}) is approved for tests only in "
            "hosting.yml: never for pupils' data"
        ]
    return []
