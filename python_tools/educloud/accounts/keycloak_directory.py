"""The realm as a directory: read the managed accounts and groups, apply a plan's changes.

Through the realm's admin client (educloud.clients.keycloak). Creations go through
Keycloak's partial import (`ifResourceExists: SKIP`) in batches: one transaction per batch,
and a batch replayed after an interruption skips what already exists, so a resumed apply
never duplicates anything. Users go to the bulk import provider's endpoint (the same partial
import in Keycloak's JPA batch mode, docs/decisions/0010), or to the standard
`POST /admin/realms/{realm}/partialImport` on a Keycloak without it. Updates, moves and
disables are per-user REST calls (partial import's OVERWRITE would delete and recreate the
user with a new id, breaking the `sub` Nextcloud keys its accounts on), run by a few workers.
The naive path (one request per user, one at a time) exists to be measured against.

Admin REST API: https://www.keycloak.org/docs-api/latest/rest-api/index.html
(PartialImportRepresentation, UserRepresentation, GroupRepresentation).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Self

from keycloak import KeycloakAdmin

from educloud.accounts.model import AccountState, DirectoryState, GroupKind, GroupState
from educloud.accounts.plan import Change, ChangeKind, Plan
from educloud.accounts.representations import (
    KeycloakDirectoryError,
    account_state,
    group_representation,
    group_state,
    user_representation,
)
from educloud.clients.keycloak import (
    PAGE,
    Connection,
    KeycloakAdminError,
    RealmAdmin,
    connect_admin,
)

# Members of a group a request. Keycloak answers each page of GET groups/{id}/members by
# sorting all the group's members (ORDER BY username, then OFFSET): a school's 125,000
# pupils cost about as much per page of 500 as per page of 10,000. On a 500,000-account
# realm, 500 a page was still reading members 8 minutes in (docs/accounts.md).
MEMBERS_PAGE = 10_000
IMPORT_RETRIES = 5
# The bulk import provider's endpoint (extensions/keycloak-bulk-import, installed by the
# keycloak role's keycloak_providers): Keycloak's partial import of users run in its JPA
# batch mode, which skips the flush after each group membership (docs/decisions/0010).
BULK_IMPORT = "educloud-bulk-import/users"

Progress = Callable[[str, int, int], None]  # (phase, done, total)


class PartialImportRefusedError(KeycloakDirectoryError):
    """The service account lacks manage-realm: creations fall back to one request each."""


class ImportPath(StrEnum):
    BATCHED = "batched"  # partial import for creations, parallel REST for the rest
    NAIVE = "naive"  # one request per user, in sequence: the reference to beat


@dataclass
class ApplyResult:
    applied: dict[ChangeKind, int] = field(default_factory=dict)
    created_ids: dict[str, str] = field(default_factory=dict)  # username -> Keycloak id


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class KeycloakDirectory(RealmAdmin):
    """One realm's managed accounts and groups, through a service account."""

    again = "run apply again when it is back: it resumes where it stopped"

    def __init__(self, admin: KeycloakAdmin, realm: str, *, workers: int = 4) -> None:
        super().__init__(admin, realm)
        self.workers = workers
        # Accounts per partial import (one transaction each) and batches in flight. Keycloak
        # flushes its JPA session at every group membership (UserAdapter.joinGroupImpl calls
        # em.flush(), and the membership check before it is a query, which flushes too), and
        # each flush dirty-checks every entity the transaction holds: an account costs more
        # the more accounts share its transaction. Small transactions, several in flight,
        # keep both cores busy (docs/decisions/0005; on the lab, 10,000 accounts: 50 a batch
        # and 2 in flight 264/s, 20 and 4 474/s, 10 and 4 402/s).
        self.batch_size = 20
        self.import_workers = 4
        self.notices: list[str] = []
        self._import_refused = False  # the service account lacks manage-realm
        # Users go to the bulk import provider until Keycloak answers that it has none.
        self.bulk_provider = True
        self._provider_lock = threading.Lock()
        # Usernames and addresses of the realm's other accounts (admins...): never created over.
        self.unmanaged: set[str] = set()
        self._user_ids: dict[str, str] = {}
        self._group_ids: dict[str, str] = {}

    @classmethod
    def connect(cls, connection: Connection, *, workers: int = 4) -> Self:
        """Log in with the service account's client credentials (clear errors otherwise)."""
        return cls(connect_admin(connection, pool=workers), connection.realm, workers=workers)

    # -- reading ------------------------------------------------------------------------

    def keycloak_id(self, username: str) -> str | None:
        """Keycloak's id of a managed account, as the last read_state or apply saw it."""
        return self._user_ids.get(username)

    def read_state(self, progress: Progress | None = None) -> DirectoryState:
        """The managed groups, accounts and memberships of the realm.

        Memberships are read group by group (one request a page of members) rather than
        user by user. Many pupils share one set of groups: each distinct set is kept once.
        Groups' members and pages of accounts are read `workers` requests at a time: one
        request at a time, Keycloak and PostgreSQL kept one core busy between them.
        """
        groups: dict[str, GroupState] = {}
        self._group_ids.clear()
        self._user_ids.clear()
        self.unmanaged.clear()
        for rep in self.paged("list groups", "groups", briefRepresentation="false"):
            group = group_state(rep)
            if group is not None:
                groups[group.name] = group
                self._group_ids[group.name] = rep["id"]

        def members_of(item: tuple[str, str]) -> list[str]:
            name, group_id = item
            pages = self.paged(
                f"list members of {name}",
                f"groups/{group_id}/members",
                size=MEMBERS_PAGE,
                briefRepresentation="true",
            )
            return [sys.intern(rep["username"]) for rep in pages]

        members: dict[str, set[str]] = {}
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            found = pool.map(members_of, self._group_ids.items())
            for done, (name, usernames) in enumerate(zip(self._group_ids, found, strict=True), 1):
                for username in usernames:
                    members.setdefault(username, set()).add(name)
                if progress:
                    progress("read groups", done, len(self._group_ids))
        shared: dict[frozenset[str], frozenset[str]] = {}
        accounts: dict[str, AccountState] = {}
        for rep in self._users():
            names = frozenset(members.pop(rep["username"], ()))
            names = shared.setdefault(names, names)
            # In two schools' groups (edited by hand)? The same one every time.
            school = min(
                (groups[n].uai for n in names if groups[n].kind is GroupKind.SCHOOL), default=""
            )
            account = account_state(rep, names, school)
            if account is not None:
                accounts[account.id] = account
                self._user_ids[account.id] = rep["id"]
            else:
                self.unmanaged.add(rep["username"])
                if rep.get("email"):
                    self.unmanaged.add(str(rep["email"]).lower())
        return DirectoryState(accounts, groups)

    def _users(self) -> Iterator[dict[str, Any]]:
        """Every account of the realm in Keycloak's order, pages read `workers` at a time
        (a wave is yielded before the next is asked for: memory stays a few pages): the
        pages the count announces, then on, one at a time, while pages come full (an
        account added meanwhile)."""
        count = int(self.call("count users", "GET", "users/count"))
        firsts = range(0, count // PAGE * PAGE + 1, PAGE)

        def page(first: int) -> list[dict[str, Any]]:
            return list(
                self.call(
                    "list users", "GET", "users", first=first, max=PAGE, briefRepresentation="false"
                )
            )

        last: list[dict[str, Any]] = []
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for start in range(0, len(firsts), self.workers):
                for last in list(pool.map(page, firsts[start : start + self.workers])):
                    yield from last
        if len(last) == PAGE:
            yield from self.paged(
                "list users", "users", first=firsts[-1] + PAGE, briefRepresentation="false"
            )

    def taken(self, accounts: Iterable[AccountState]) -> list[str]:
        """Usernames or addresses of accounts to create that an unmanaged account holds."""
        clashes = []
        for account in accounts:
            for value in (account.id, account.email):
                if value and value.lower() in self.unmanaged:
                    clashes.append(
                        f"{account.id}: {value!r} belongs to an account not managed by "
                        "educloud accounts (rename or remove one of them)"
                    )
        return clashes

    # -- applying -----------------------------------------------------------------------

    def apply(
        self,
        plan: Plan,
        *,
        path: ImportPath = ImportPath.BATCHED,
        passwords: Callable[[AccountState], str | None] = lambda _account: None,
        progress: Progress | None = None,
    ) -> ApplyResult:
        """Apply the plan's changes in order; `read_state` must have run on this object.

        `passwords` gives the initial password of an account to create (or None): it is
        called before the account's batch is sent, so the credential journal holds it first.
        """
        result = ApplyResult()
        changes = plan.applicable
        for kind in (ChangeKind.CREATE_GROUP, ChangeKind.CREATE_ACCOUNT):
            todo = [c for c in changes if c.kind is kind]
            if not todo:
                continue
            if path is ImportPath.BATCHED:
                self._import(kind, todo, passwords, result, progress)
            else:
                self._one_by_one(kind, todo, passwords, result, progress)
        rest = [
            c for c in changes if c.kind not in (ChangeKind.CREATE_GROUP, ChangeKind.CREATE_ACCOUNT)
        ]
        self._per_change(
            rest,
            workers=1 if path is ImportPath.NAIVE else self.workers,
            result=result,
            progress=progress,
        )
        return result

    def _import(
        self,
        kind: ChangeKind,
        todo: list[Change],
        passwords: Callable[[AccountState], str | None],
        result: ApplyResult,
        progress: Progress | None,
    ) -> None:
        """Partial import in batches, `import_workers` batches in flight at a time.

        Payloads are built here, in order, so each account's password is journaled before
        its batch leaves; the requests run on the pool.
        """
        if self._import_refused:
            self._one_by_one(kind, todo, passwords, result, progress, self.workers)
            return
        done = 0
        batches = list(_chunks(todo, self.batch_size))
        with ThreadPoolExecutor(max_workers=self.import_workers) as pool:
            for start in range(0, len(batches), self.import_workers):
                wave = batches[start : start + self.import_workers]
                payloads = [self._payload(kind, batch, passwords) for batch in wave]
                try:
                    answers = list(
                        pool.map(
                            lambda pair: self._import_batch(
                                f"import {len(pair[0])} {kind}", pair[1]
                            ),
                            zip(wave, payloads, strict=True),
                        )
                    )
                except PartialImportRefusedError as refused:
                    self.notices.append(str(refused))
                    self._import_refused = True
                    rest = [c for batch in batches[start:] for c in batch]
                    self._one_by_one(kind, rest, passwords, result, progress, self.workers)
                    return
                for batch, answer in zip(wave, answers, strict=True):
                    result.applied[kind] = result.applied.get(kind, 0) + self._record_ids(
                        answer, result
                    )
                    done += len(batch)
                if progress:
                    progress(str(kind), done, len(todo))
        if kind is ChangeKind.CREATE_GROUP and any(c.target not in self._group_ids for c in todo):
            self._refresh_group_ids()

    def _payload(
        self,
        kind: ChangeKind,
        batch: Sequence[Change],
        passwords: Callable[[AccountState], str | None],
    ) -> dict[str, Any]:
        if kind is ChangeKind.CREATE_GROUP:
            groups = [group_representation(c.group) for c in batch if c.group]
            return {"ifResourceExists": "SKIP", "groups": groups}
        users = [self._new_user(c, passwords) for c in batch]
        return {"ifResourceExists": "SKIP", "users": users}

    def _record_ids(self, answer: Any, result: ApplyResult) -> int:
        """Record the ids of what the batch added; how many it added (skips not counted)."""
        added = 0
        for entry in (answer or {}).get("results", []):
            if entry.get("action") != "ADDED":
                continue  # SKIPPED: it existed, created by an interrupted run
            added += 1
            if entry.get("resourceType") == "GROUP":
                self._group_ids[entry["resourceName"]] = entry["id"]
            elif entry.get("resourceType") == "USER":
                self._user_ids[entry["resourceName"]] = entry["id"]
                result.created_ids[entry["resourceName"]] = entry["id"]
        return added

    def _import_batch(self, what: str, payload: dict[str, Any]) -> Any:
        if "users" in payload and self.bulk_provider:
            try:
                return self._retry_import(what, BULK_IMPORT, payload)
            except KeycloakAdminError as exc:
                if "HTTP 404" not in str(exc):
                    raise
                self._no_bulk_provider()
        return self._retry_import(what, "partialImport", payload)

    def _no_bulk_provider(self) -> None:
        with self._provider_lock:
            if self.bulk_provider:
                self.bulk_provider = False
                self.notices.append(
                    "Keycloak has no educloud-bulk-import provider (keycloak_providers, "
                    "docs/accounts.md): accounts are created through the standard partial "
                    "import, about half as fast"
                )

    def _retry_import(self, what: str, path: str, payload: dict[str, Any]) -> Any:
        # A killed client does not stop Keycloak: the batch it sent may still be committing
        # when the resumed apply sends the same accounts, and Keycloak answers 409 instead of
        # skipping them. Once that transaction ends, SKIP skips them: retry a few times.
        for attempt in range(IMPORT_RETRIES):
            try:
                return self.call(what, "POST", path, payload)
            except KeycloakAdminError as exc:
                if "HTTP 403" in str(exc):
                    raise PartialImportRefusedError(
                        "the service account may not use partial import (it needs "
                        "manage-realm: a bulk_import client, docs/accounts.md); creating "
                        f"accounts one request each on {self.workers} workers instead"
                    ) from None
                if "HTTP 409" not in str(exc) or attempt == IMPORT_RETRIES - 1:
                    raise
                time.sleep(2**attempt)
        return None

    def _new_user(
        self, change: Change, passwords: Callable[[AccountState], str | None]
    ) -> dict[str, Any]:
        assert change.account is not None
        rep = user_representation(change.account)
        rep["groups"] = [f"/{name}" for name in sorted(change.account.groups)]
        password = passwords(change.account)
        if password is not None:
            rep["credentials"] = [{"type": "password", "value": password, "temporary": True}]
            # Import does not turn `temporary` into the action: ask for it explicitly.
            rep["requiredActions"] = ["UPDATE_PASSWORD"]
        return rep

    def _one_by_one(
        self,
        kind: ChangeKind,
        todo: list[Change],
        passwords: Callable[[AccountState], str | None],
        result: ApplyResult,
        progress: Progress | None,
        workers: int = 1,
    ) -> None:
        """One request per group or account (POST with its groups), `workers` at a time."""

        def create(change: Change) -> None:
            if kind is ChangeKind.CREATE_GROUP:
                assert change.group is not None
                rep = group_representation(change.group)
                rep.pop("path")
                self._create(f"create group {change.target}", "groups", rep)
            else:
                new_id = self._create(f"create user {change.target}", "users", reps[change.target])
                if new_id:
                    self._user_ids[change.target] = new_id
                    result.created_ids[change.target] = new_id

        done = result.applied.get(kind, 0)
        total = done + len(todo)
        # Built first, in order: each password is journaled before its account is sent.
        reps = (
            {}
            if kind is ChangeKind.CREATE_GROUP
            else {c.target: self._new_user(c, passwords) for c in todo}
        )
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(create, todo):
                done += 1
                result.applied[kind] = done
                if progress:
                    progress(str(kind), done, total)
        if kind is ChangeKind.CREATE_GROUP:
            self._refresh_group_ids()

    def _create(self, what: str, path: str, rep: dict[str, Any]) -> str | None:
        """POST a new resource; its id (from Location), or None if it existed already."""
        try:
            response = self.call(what, "POST", path, rep, raw=True)
        except KeycloakAdminError as exc:
            if "HTTP 409" not in str(exc):  # created by an interrupted run: nothing to do
                raise
            return None
        location = response.headers.get("Location", "")
        return location.rsplit("/", 1)[-1] or None

    def _refresh_group_ids(self) -> None:
        for rep in self.paged("list groups", "groups", briefRepresentation="true"):
            self._group_ids[rep["name"]] = rep["id"]

    def _refresh_user_ids(self, usernames: set[str]) -> None:
        for name in usernames - set(self._user_ids):
            found = self.call(f"find user {name}", "GET", "users", username=name, exact="true")
            if found:
                self._user_ids[name] = found[0]["id"]

    def _per_change(
        self,
        changes: list[Change],
        *,
        workers: int,
        result: ApplyResult,
        progress: Progress | None,
    ) -> None:
        if not changes:
            return
        missing = {c.target for c in changes if c.account is not None} - set(self._user_ids)
        self._refresh_user_ids(missing)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for done, kind in enumerate(pool.map(self._apply_one, changes), 1):
                result.applied[kind] = result.applied.get(kind, 0) + 1
                if progress:
                    progress("update", done, len(changes))

    def _apply_one(self, change: Change) -> ChangeKind:
        if change.group is not None:  # archive or restore
            group_id = self._group_ids.get(change.target)
            if group_id is None:
                raise KeycloakDirectoryError(
                    f"{change.kind} {change.target}: the group is not in the realm any more; "
                    "run apply again"
                )
            rep = group_representation(change.group)
            rep.pop("path")
            self.call(f"{change.kind} {change.target}", "PUT", f"groups/{group_id}", rep)
            return change.kind
        assert change.account is not None
        user_id = self._user_ids.get(change.target)
        if user_id is None:
            raise KeycloakDirectoryError(
                f"{change.kind} {change.target}: the account is not in the realm any more; "
                "run plan again"
            )
        if change.kind is ChangeKind.MOVE_ACCOUNT:
            for name in sorted(change.add_groups):
                group_id = self._group_ids.get(name)
                if group_id is None:
                    raise KeycloakDirectoryError(
                        f"add {change.target} to {name}: the group is not in the realm any "
                        "more (deleted by hand?); run apply again to recreate it"
                    )
                self.call(
                    f"add {change.target} to {name}", "PUT", f"users/{user_id}/groups/{group_id}"
                )
            for name in sorted(change.remove_groups):
                member_of = self._group_ids.get(name)
                if member_of is not None:
                    self.call(
                        f"remove {change.target} from {name}",
                        "DELETE",
                        f"users/{user_id}/groups/{member_of}",
                    )
        else:  # update, enable, disable: the whole representation, so no attribute is lost
            self.call(
                f"{change.kind} {change.target}",
                "PUT",
                f"users/{user_id}",
                user_representation(change.account),
            )
        return change.kind

    def existing_usernames(self, usernames: Iterable[str]) -> set[str]:
        """Which of these accounts exist in the realm (after an apply)."""
        wanted = set(usernames)
        self._refresh_user_ids(wanted)
        return wanted & set(self._user_ids)
