"""Benchmark: importing accounts into the lab's real Keycloak, three ways, in one run.

    .venv/bin/python benchmarks/accounts_import.py [--accounts 10000] [--offline]

1. batched: `educloud accounts apply`'s path (20 accounts a request, 4 in flight) through
   the bulk import provider (Keycloak's partial import in its JPA batch mode,
   docs/decisions/0010), when the lab's Keycloak has it;
2. partial import: the same batches through Keycloak's standard partialImport endpoint
   (what apply does on a Keycloak without the provider), for reference;
3. naive: one request per account (POST /users with its groups), one at a time;
4. offline (--offline): `kc.sh import` of a realm file holding the same accounts, Keycloak
   stopped then restarted (what a first load of a whole academy may use).
Each way imports the same N accounts with their school and class groups into a scratch
realm of its own (a copy of the lab realm's user profile), which is deleted afterwards.
Before anything is measured:
- a resident realm of --resident accounts is loaded and kept until the end, as in a
  Keycloak that already serves an academy (on near-empty tables PostgreSQL plans
  sequential scans, and an import then runs 4 times slower: see docs/accounts.md);
- warm-up rounds, not measured, run until Keycloak's JIT has compiled the import's code:
  they stop after two rounds in a row in which no batched way ran 10% faster than in its
  best round before (at most --warmup-rounds). Their rates are printed.
Prints accounts per second of each way (the batched ways --rounds times, interleaved, and
their median) and the ratios of the medians. Needs the deployed lab; targets only the
lab's addresses. Accounts have no password: with one, Keycloak's hashing of each password
dominates whatever the path (--passwords N measures that on the batched path).
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import requests
from keycloak import KeycloakAdmin

from educloud.accounts.keycloak_directory import ImportPath, KeycloakDirectory
from educloud.accounts.model import Account, DirectoryState, Login, Profile
from educloud.accounts.plan import plan
from educloud.deployment import model as deployment
from educloud.lab import orchestrate
from educloud.lab import secrets as lab_secrets
from educloud.lab.settings import LabPaths
from educloud.netpin import pinned_names
from educloud.paths import inventories_dir

TODAY = date(2026, 11, 26)
YEAR = 2026
UAIS = ("0750001U", "0690002C", "0130003H", "0330004A")
PUPILS_PER_CLASS = 28


def synthetic_accounts(count: int, *, local: bool = False) -> list[Account]:
    accounts = []
    for n in range(count):
        uai = UAIS[n % len(UAIS)]
        label = f"C{n // (PUPILS_PER_CLASS * len(UAIS)):03d}"
        accounts.append(
            Account(
                id=f"bench{n:06d}",
                given_name="Élève",
                family_name=f"Numéro {n}",
                email=None,
                profile=Profile.PUPIL,
                uai=uai,
                classes=(label,),
                login=Login.LOCAL if local else Login.FEDERATED,
            )
        )
    return accounts


def scratch_realm(admin: KeycloakAdmin, name: str, profile: dict[str, Any]) -> None:
    admin.create_realm({"realm": name, "enabled": True}, skip_exists=False)
    admin.connection.raw_put(f"admin/realms/{name}/users/profile", data=json.dumps(profile))


def delete_realm(admin: KeycloakAdmin, name: str) -> None:
    admin.connection.raw_delete(f"admin/realms/{name}")


def load(
    admin: KeycloakAdmin,
    realm: str,
    accounts: list[Account],
    path: ImportPath,
    with_password: bool = False,
    provider: bool = True,
) -> float:
    """Seconds `educloud accounts apply`'s directory takes to create the accounts in realm."""
    changes = plan(DirectoryState(), accounts, school_year=YEAR, today=TODAY, grace_days=90)
    directory = KeycloakDirectory(admin, realm)
    directory.bulk_provider = provider
    start = time.monotonic()
    result = directory.apply(
        changes,
        path=path,
        passwords=(lambda _a: secrets.token_urlsafe(12) + "aA1")
        if with_password
        else (lambda _a: None),
    )
    seconds = time.monotonic() - start
    if provider and not directory.bulk_provider:
        raise SystemExit(
            "the lab's Keycloak has no bulk import provider: run `educloud lab up` and "
            "`educloud deploy --inventory inventories/lab` first"
        )
    created = directory.read_state().accounts
    assert len(created) == len(accounts), (len(created), len(accounts), result.applied)
    return seconds


def import_online(
    admin: KeycloakAdmin,
    realm: str,
    accounts: list[Account],
    path: ImportPath,
    profile: dict[str, Any],
    with_password: bool = False,
    provider: bool = True,
) -> float:
    """Seconds of `load` into a scratch realm, deleted afterwards."""
    scratch_realm(admin, realm, profile)
    try:
        return load(admin, realm, accounts, path, with_password, provider)
    finally:
        delete_realm(admin, realm)


def realm_files(
    realm: str, accounts: list[Account], profile: dict[str, Any], per_file: int
) -> dict[str, dict[str, Any]]:
    """kc.sh import's directory layout: the realm with its groups, then users files
    (`<realm>-users-<n>.json`), each imported in a transaction of its own."""
    from educloud.accounts.representations import group_representation, user_representation

    changes = plan(DirectoryState(), accounts, school_year=YEAR, today=TODAY, grace_days=90)
    groups = [group_representation(c.group) for c in changes.changes if c.group]
    users = []
    for change in changes.changes:
        if change.account is not None:
            rep = user_representation(change.account)
            rep["groups"] = [f"/{g}" for g in sorted(change.account.groups)]
            users.append(rep)
    files = {
        f"{realm}-realm.json": {
            "realm": realm,
            "enabled": True,
            "groups": groups,
            "components": {
                "org.keycloak.userprofile.UserProfileProvider": [
                    {
                        "providerId": "declarative-user-profile",
                        "subComponents": {},
                        "config": {"kc.user.profile.config": [json.dumps(profile)]},
                    }
                ]
            },
        }
    }
    for number, start in enumerate(range(0, len(users), per_file)):
        files[f"{realm}-users-{number}.json"] = {
            "realm": realm,
            "users": users[start : start + per_file],
        }
    return files


def lab_run(host: str, command: str, stdin: bytes | None = None) -> str:
    result = subprocess.run(
        [*orchestrate.ssh_command(host), command],
        input=stdin,
        capture_output=True,
        check=False,
        timeout=900,
    )
    if result.returncode != 0:
        raise SystemExit(f"{command[:60]}…: {result.stderr.decode()[-500:]}")
    return result.stdout.decode()


def wait_ready(admin_url: str, ca: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{admin_url}/realms/master", verify=ca, timeout=5).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(2)
    raise SystemExit("Keycloak did not come back after the offline import")


def import_offline(
    host: str, realm: str, accounts: list[Account], profile: dict[str, Any], ready: Any
) -> tuple[float, float]:
    """Seconds of `kc.sh import` alone, and of stop + import + start until ready."""
    remote = f"/tmp/{realm}"  # noqa: S108 (on the lab host, removed below)
    with tempfile.TemporaryDirectory() as local:
        for name, document in realm_files(realm, accounts, profile, per_file=50).items():
            (Path(local) / name).write_text(json.dumps(document), encoding="utf-8")
        archive = subprocess.run(
            ["tar", "-C", local, "-czf", "-", "."], capture_output=True, check=True
        ).stdout
    lab_run(
        host, f"mkdir -p {remote} && tar -xzf - -C {remote} && chown -R keycloak {remote}", archive
    )
    kc = (
        "set -a; . /etc/keycloak/keycloak.env; set +a; "
        "runuser -u keycloak -- /opt/keycloak/current/bin/kc.sh "
        f"--config-file=/etc/keycloak/keycloak.conf import --dir {remote} --override false"
    )
    start = time.monotonic()
    lab_run(host, "systemctl stop keycloak")
    began = time.monotonic()
    try:
        lab_run(host, f"bash -c '{kc}' >/dev/null")
        import_seconds = time.monotonic() - began
    finally:
        lab_run(host, f"systemctl start keycloak; rm -rf {remote}")
    ready()
    return import_seconds, time.monotonic() - start


# (label, path, through the provider)
WAYS = (
    ("batched", ImportPath.BATCHED, True),
    ("partial import", ImportPath.BATCHED, False),
    ("naive", ImportPath.NAIVE, False),
)
# The warm-up ends after SETTLED_ROUNDS rounds in a row that made no batched way FASTER
# times faster than its best round before.
FASTER = 1.10
SETTLED_ROUNDS = 2


def warm_up(
    admin: KeycloakAdmin, profile: dict[str, Any], per_round: int, max_rounds: int, tag: str
) -> None:
    """Imports, unmeasured, until Keycloak's JIT has compiled the import's code.

    Measured on the lab after a restart of Keycloak, one 10,000-account import after the
    other through the provider: 1,031, 1,143, 1,387, 1,360, 1,741, 1,695, 1,870/s, then
    1,531-1,790/s; Keycloak's compiler threads used 5.3 s of CPU during the second import
    and at most 0.8 s from the eighth on. A fixed warm-up of 5,000 accounts measured the
    batched path at 740.0 to 1,435.9/s over five runs (medians; docs/accounts.md). Ending
    at the first round that was not 10% faster, a run measured 1,129.8/s, then 1,762.7
    and 1,744.4/s: one round in a row is not enough.
    """
    best: dict[str, float] = {}
    settled = 0
    for number in range(1, max_rounds + 1):
        improved = False
        for label, path, provider in WAYS:
            if path is not ImportPath.BATCHED:
                continue
            seconds = import_online(
                admin,
                f"warmup-{label.replace(' ', '-')}-{number}-{tag}",
                synthetic_accounts(per_round),
                path,
                profile,
                provider=provider,
            )
            rate = per_round / seconds
            improved = improved or rate > best.get(label, 0.0) * FASTER
            best[label] = max(best.get(label, 0.0), rate)
            print(f"warm-up {number}: {label:>14} {rate:8.1f} accounts/s", flush=True)
        settled = 0 if improved else settled + 1
        if settled == SETTLED_ROUNDS:
            break
    naive = max(per_round // 5, 1)
    seconds = import_online(
        admin,
        f"warmup-naive-{tag}",
        synthetic_accounts(naive),
        ImportPath.NAIVE,
        profile,
        provider=False,
    )
    print(f"warm-up: {'naive':>14} {naive / seconds:8.1f} accounts/s ({naive} accounts)")


def measure(
    admin: KeycloakAdmin,
    profile: dict[str, Any],
    accounts: list[Account],
    rounds: int,
    tag: str,
) -> dict[str, float]:
    """Median accounts per second of each way.

    The batched ways run `rounds` times, interleaved, so that a slow spell of the lab
    weighs on every way alike. The naive way runs once: 10,000 requests over a minute and
    a half already even out.
    """
    measured: dict[str, list[float]] = {label: [] for label, _path, _provider in WAYS}
    for round_number in range(rounds):
        for label, path, provider in WAYS:
            if path is ImportPath.NAIVE and round_number > 0:
                continue
            seconds = import_online(
                admin,
                f"bench-{label.replace(' ', '-')}-{round_number}-{tag}",
                accounts,
                path,
                profile,
                provider=provider,
            )
            measured[label].append(len(accounts) / seconds)
            print(
                f"{label:>14}: {seconds:8.1f} s  {len(accounts) / seconds:8.1f} accounts/s"
                f"  (round {round_number + 1})",
                flush=True,
            )
    rates = {}
    for label, values in measured.items():
        rates[label] = statistics.median(values)
        print(
            f"{label:>14}: median {rates[label]:8.1f} accounts/s over {len(values)} "
            f"(min {min(values):.1f}, max {max(values):.1f})"
        )
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--offline", action="store_true", help="Also measure kc.sh import.")
    parser.add_argument("--passwords", type=int, default=0, help="Batched, with passwords.")
    parser.add_argument(
        "--rounds", type=int, default=3, help="Runs of each batched way (the median counts)."
    )
    parser.add_argument(
        "--resident",
        type=int,
        default=20_000,
        help="Accounts kept in a realm of their own during the run (0: none).",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=5000,
        help="Accounts of each warm-up round of each batched way (0: no warm-up); the "
        "naive way is warmed up once with a fifth.",
    )
    parser.add_argument(
        "--warmup-rounds", type=int, default=10, help="At most this many warm-up rounds."
    )
    args = parser.parse_args()

    lab = inventories_dir() / "lab"
    found = deployment.load(lab)
    paths = LabPaths.default()
    ca = str(paths.root / "ca.crt")
    vault = lab_secrets.read(paths)
    keycloak_host = found.in_group("keycloak")[0].name
    with pinned_names(found.pins()):
        admin = KeycloakAdmin(
            server_url=found.keycloak_admin_url,
            # Master's automation client (keycloak role, tasks/master.yml): client credentials.
            client_id="educloud-automation",
            client_secret_key=vault["vault_keycloak_automation_client_secret"],
            realm_name="master",
            verify=ca,
            timeout=600,
        )
        profile = admin.connection.raw_get(f"admin/realms/{found.realms[0]}/users/profile").json()
        accounts = synthetic_accounts(args.accounts)
        tag = secrets.token_hex(3)
        print(f"{args.accounts} accounts, {len(UAIS)} schools, classes of {PUPILS_PER_CLASS}")
        resident = f"bench-resident-{tag}"
        if args.resident:
            scratch_realm(admin, resident, profile)
        try:
            if args.resident:
                seconds = load(
                    admin, resident, synthetic_accounts(args.resident), ImportPath.BATCHED
                )
                print(f"resident realm: {args.resident} accounts, loaded in {seconds:.1f} s")
            if args.warmup:
                warm_up(admin, profile, args.warmup, args.warmup_rounds, tag)
            rates = measure(admin, profile, accounts, args.rounds, tag)
            if args.passwords:
                with_pw = synthetic_accounts(args.passwords, local=True)
                seconds = import_online(
                    admin,
                    f"bench-pw-{tag}",
                    with_pw,
                    ImportPath.BATCHED,
                    profile,
                    with_password=True,
                )
                print(
                    f"batched with a password each: {args.passwords} in {seconds:.1f} s "
                    f"({args.passwords / seconds:.1f} accounts/s)"
                )
            if args.offline:
                realm = f"bench-offline-{tag}"
                import_seconds, total = import_offline(
                    keycloak_host,
                    realm,
                    accounts,
                    profile,
                    lambda: wait_ready(found.keycloak_admin_url, ca),
                )
                rates["offline"] = args.accounts / import_seconds
                print(
                    f"{'offline':>14}: {import_seconds:8.1f} s  {rates['offline']:8.1f} "
                    f"accounts/s (kc.sh import; with stop and start: {total:.1f} s)"
                )
                admin.connection.get_token()
                delete_realm(admin, realm)
        finally:
            if args.resident:
                admin.connection.get_token()
                delete_realm(admin, resident)
        print(f"batched / naive (medians): {rates['batched'] / rates['naive']:.1f}x")
        print(
            f"batched / partial import (medians): {rates['batched'] / rates['partial import']:.1f}x"
        )
        if "offline" in rates:
            print(f"offline / batched: {rates['offline'] / rates['batched']:.1f}x")


if __name__ == "__main__":
    main()
