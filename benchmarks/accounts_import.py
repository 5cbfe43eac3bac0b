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
Both online ways are warmed up first (--warmup, not measured: Keycloak's JIT). Prints
accounts per second of each way (the batched ways --rounds times, interleaved, and their
median) and the ratios of the medians. Needs the deployed lab; targets only
the lab's addresses. Accounts have no password: with one, Keycloak's hashing of each
password dominates whatever the path (--passwords N measures that on the batched path).
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
from educloud.charter import deployment
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


def import_online(
    admin: KeycloakAdmin,
    realm: str,
    accounts: list[Account],
    path: ImportPath,
    profile: dict[str, Any],
    with_password: bool = False,
    provider: bool = True,
) -> float:
    scratch_realm(admin, realm, profile)
    try:
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
    finally:
        delete_realm(admin, realm)


def realm_files(
    realm: str, accounts: list[Account], profile: dict[str, Any], per_file: int
) -> dict[str, dict[str, Any]]:
    """kc.sh import's directory layout: the realm with its groups, then users files
    (`<realm>-users-<n>.json`), each imported in a transaction of its own."""
    from educloud.accounts.keycloak_directory import group_representation, user_representation

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--offline", action="store_true", help="Also measure kc.sh import.")
    parser.add_argument("--passwords", type=int, default=0, help="Batched, with passwords.")
    parser.add_argument(
        "--rounds", type=int, default=3, help="Runs of each batched way (the median counts)."
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=5000,
        help="Accounts imported each way first, not measured (0: none; naive: a fifth).",
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
            username="admin",
            password=vault["vault_keycloak_admin_password"],
            realm_name="master",
            verify=ca,
            timeout=600,
        )
        profile = admin.connection.raw_get(f"admin/realms/{found.realms[0]}/users/profile").json()
        accounts = synthetic_accounts(args.accounts)
        tag = secrets.token_hex(3)
        rates: dict[str, float] = {}
        print(f"{args.accounts} accounts, {len(UAIS)} schools, classes of {PUPILS_PER_CLASS}")
        # (label, path, through the provider)
        ways = [
            ("batched", ImportPath.BATCHED, True),
            ("partial import", ImportPath.BATCHED, False),
            ("naive", ImportPath.NAIVE, False),
        ]
        if args.warmup:
            # Keycloak's JIT compiles the import's code paths during the first thousands of
            # accounts: measured cold, the batched path (run first) ran at 170/s, warm at
            # 440-470/s on the same lab; 2,000 accounts of warm-up were still not enough
            # after a restart. Warm every way up first, unmeasured.
            for label, path, provider in ways:
                count = args.warmup if path is ImportPath.BATCHED else max(args.warmup // 5, 1)
                import_online(
                    admin,
                    f"warmup-{label.replace(' ', '-')}-{tag}",
                    synthetic_accounts(count),
                    path,
                    profile,
                    provider=provider,
                )
            print(f"warm-up: {args.warmup} accounts batched, {max(args.warmup // 5, 1)} naive")
        # Rates on this lab vary by up to 3x from one import to the next, whatever the way
        # (the same way, run twice in a row, gave 253/s then 920/s): the batched ways run
        # --rounds times, interleaved, and each way's median is compared. The naive way runs
        # once: 10,000 requests over a minute and a half already even out.
        measured: dict[str, list[float]] = {label: [] for label, _path, _provider in ways}
        for round_number in range(args.rounds):
            for label, path, provider in ways:
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
                measured[label].append(args.accounts / seconds)
                print(
                    f"{label:>14}: {seconds:8.1f} s  {args.accounts / seconds:8.1f} accounts/s"
                    f"  (round {round_number + 1})",
                    flush=True,
                )
        for label, values in measured.items():
            rates[label] = statistics.median(values)
            print(
                f"{label:>14}: median {rates[label]:8.1f} accounts/s over {len(values)} "
                f"(min {min(values):.1f}, max {max(values):.1f})"
            )
        if args.passwords:
            with_pw = synthetic_accounts(args.passwords, local=True)
            seconds = import_online(
                admin, f"bench-pw-{tag}", with_pw, ImportPath.BATCHED, profile, with_password=True
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
                f"{'offline':>14}: {import_seconds:8.1f} s  {rates['offline']:8.1f} accounts/s "
                f"(kc.sh import; with stop and start: {total:.1f} s)"
            )
            admin.connection.get_token()
            delete_realm(admin, realm)
        print(f"batched / naive (medians): {rates['batched'] / rates['naive']:.1f}x")
        print(
            f"batched / partial import (medians): {rates['batched'] / rates['partial import']:.1f}x"
        )
        if "offline" in rates:
            print(f"offline / batched: {rates['offline'] / rates['batched']:.1f}x")


if __name__ == "__main__":
    main()
