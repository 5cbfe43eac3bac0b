"""Portability (charter C8): each user's data as one ZIP archive whose manifest proves it whole.

An archive (`<user id>.zip`, format "educloud-export/1") holds:

- `profile.json`: the Keycloak account (names, email, state, attributes, groups), never
  its credentials;
- `files/...`: the user's Nextcloud files byte for byte (WebDAV), or
  `nextcloud/<uid>_<date>.zip`: Nextcloud's own user_migration export where that app is
  installed (files, versions, calendars, contacts, settings; importable into any Nextcloud);
- `calendars/<name>.ics` and `contacts/<name>.vcf` (WebDAV path): the user's own calendars
  (iCalendar) and address books (vCard), when they have any;
- `manifest.json`: size and SHA-256 of every other member, the user id, the creation time,
  educloud's version. `verify_export` recomputes them: an archive that verifies is complete
  and unaltered (against corruption, not against someone who rewrites the manifest too).

Everything is streamed (a file goes from the HTTP response through SHA-256 into the ZIP in
chunks), archives are written to `<name>.part`, fsynced and renamed, so a killed run leaves
either a whole archive or a torn `.part` that the next run removes and redoes. Runs over many
users (`export_many`) go one user at a time: memory does not grow with their number.

Each directory of archives carries an `EXPORT-KIND` marker that `educloud retention` reads
(`export_kind`): `user` archives fall under the `exports` category of policies/retention.yml,
a contract-end run (`contract-end-<date>/`, every account) under `contract_end_exports`
(kept 3 months after the contract ends, then erased).
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import shlex
import subprocess
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import IO, Any, Protocol, TypeVar

import requests

from educloud.errors import EducloudError

FORMAT = "educloud-export/1"
MANIFEST_NAME = "manifest.json"
PROFILE_NAME = "profile.json"
KIND_FILE = "EXPORT-KIND"
COMPLETE_FILE = "COMPLETE"
KIND_USER = "user"
KIND_CONTRACT_END = "contract_end"
RETENTION_CATEGORIES = {KIND_USER: "exports", KIND_CONTRACT_END: "contract_end_exports"}
"""Which policies/retention.yml category applies to a directory of each export kind."""
CONTRACT_END_PREFIX = "contract-end-"
TEMP_SUFFIX = ".part"
CHUNK = 1 << 20
_ZIP_EPOCH = datetime(1980, 1, 1, tzinfo=UTC)  # ZIP cannot date anything earlier
_T = TypeVar("_T")


class ExportError(EducloudError):
    """An export could not be made or read; the message says which and what to do."""


class NoNextcloudAccountError(ExportError):
    """The user has no Nextcloud account (user_oidc creates it at the first login): there
    is nothing of theirs in Nextcloud, and their archive holds their profile only."""


# -- the shapes that cross module borders --------------------------------------------------


@dataclass(frozen=True)
class ExportItem:
    """One member of the archive, read lazily: `chunks()` is called once, when written."""

    path: str
    chunks: Callable[[], Iterator[bytes]]
    modified: datetime | None = None


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ExportResult:
    user_id: str
    archive: Path
    source: str
    """Where the Nextcloud data came from: "webdav" or "user_migration"."""
    files: int
    """Members listed in the manifest (profile, files, calendars, contacts)."""
    bytes: int


@dataclass(frozen=True)
class ExportEvent:
    """What happened to one user, for progress displays."""

    user_id: str
    outcome: str
    """exported | already_done | redone_torn | failed"""
    done: int
    total: int | None
    detail: str = ""


@dataclass
class ExportRun:
    directory: Path
    kind: str
    exported: int = 0
    already_done: int = 0
    redone_torn: int = 0
    """Users whose torn `.part` (a killed run) was removed and exported again."""
    failed: dict[str, str] = field(default_factory=dict)
    """Only the failures are kept per user: the rest are counts (bounded memory)."""

    @property
    def complete(self) -> bool:
        return not self.failed


ExportProgress = Callable[[ExportEvent], None]


# -- the pluggable sources -----------------------------------------------------------------


class ProfileSource(Protocol):
    def profile(self, user_id: str) -> dict[str, Any]:
        """The account as profile.json shows it; never credentials."""
        ...


class ContentSource(Protocol):
    name: str

    def items(self, user_id: str) -> Iterator[ExportItem]:
        """The user's Nextcloud data; closing the iterator releases what it holds."""
        ...


class CredentialProvider(Protocol):
    def app_password(self, user_id: str) -> AbstractContextManager[str]:
        """A password that lets the tool read `user_id`'s files over WebDAV, for the
        duration of the block (Nextcloud refuses an administrator another user's files)."""
        ...


@dataclass(frozen=True)
class ExportSources:
    profiles: ProfileSource
    content: ContentSource


# -- one user ------------------------------------------------------------------------------


def archive_path(out_dir: Path, user_id: str) -> Path:
    _check_user_id(user_id)
    return out_dir / f"{user_id}.zip"


def export_user(
    sources: ExportSources, user_id: str, out_dir: Path, *, now: datetime
) -> ExportResult:
    """Write `<out_dir>/<user_id>.zip` (mode 0600) atomically: the whole archive or none.

    A failure removes the temporary `.part`; a killed process leaves it, and export_many
    removes it and exports the user again.
    """
    final = archive_path(out_dir, user_id)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = final.with_name(final.name + TEMP_SUFFIX)
    entries: list[ManifestEntry] = []
    seen: set[str] = set()
    try:
        # Personal data: readable by the exporting account only (no umask race).
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
            profile = json.dumps(sources.profiles.profile(user_id), ensure_ascii=False, indent=2)
            entries.append(_write_member(archive, PROFILE_NAME, iter([profile.encode()]), now))
            with _closed_after(sources.content.items(user_id)) as items:
                for item in items:
                    name = _member_name(item.path, user_id)
                    if name in seen or name in (PROFILE_NAME, MANIFEST_NAME):
                        raise ExportError(f"{user_id}: {name} comes twice in the export")
                    seen.add(name)
                    entries.append(
                        _write_member(archive, name, item.chunks(), item.modified or now)
                    )
            manifest = _manifest(user_id, sources.content.name, entries, now)
            archive.writestr(_zip_info(MANIFEST_NAME, now), manifest)
            archive.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temp, final)
        _fsync_dir(out_dir)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return ExportResult(
        user_id, final, sources.content.name, len(entries), sum(e.size for e in entries)
    )


def _write_member(
    archive: zipfile.ZipFile, name: str, chunks: Iterator[bytes], modified: datetime
) -> ManifestEntry:
    digest = hashlib.sha256()
    size = 0
    # force_zip64: the size is not known before the last chunk, and may exceed 4 GiB.
    with (
        _closed_after(chunks),
        archive.open(_zip_info(name, modified), "w", force_zip64=True) as out,
    ):
        for chunk in chunks:
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return ManifestEntry(name, size, digest.hexdigest())


@contextmanager
def _closed_after(iterator: Iterator[_T]) -> Iterator[Iterator[_T]]:
    """Close a generator even when the export stops half-way (releases its connection or
    its app password)."""
    try:
        yield iterator
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def _zip_info(name: str, modified: datetime) -> zipfile.ZipInfo:
    when = max(modified.astimezone(UTC), _ZIP_EPOCH)
    info = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o600 << 16
    return info


def _manifest(user_id: str, source: str, entries: list[ManifestEntry], now: datetime) -> bytes:
    document = {
        "format": FORMAT,
        "user_id": user_id,
        "created_at": now.astimezone(UTC).isoformat(),
        "educloud_version": _version(),
        "source": source,
        "files": [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in entries],
    }
    return json.dumps(document, ensure_ascii=False, indent=1).encode()


def _version() -> str:
    try:
        return metadata.version("educloud")
    except metadata.PackageNotFoundError:
        return "unknown"


def _check_user_id(user_id: str) -> None:
    if not user_id or user_id in (".", "..") or any(c in user_id for c in "/\\\0"):
        raise ExportError(f"{user_id!r} cannot name an archive: a user id has no '/', '\\' or NUL")


def _member_name(path: str, user_id: str) -> str:
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ExportError(f"{user_id}: the source gave an unsafe archive path {path!r}")
    return "/".join(parts)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- verification --------------------------------------------------------------------------


def verify_export(archive: Path) -> list[str]:
    """What is wrong with an export archive; an empty list means it verifies."""
    if not archive.is_file():
        return [f"{archive}: no such archive"]
    try:
        with zipfile.ZipFile(archive) as zf:
            return _verify_members(zf)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        return [f"{archive.name}: not a readable ZIP archive ({exc})"]


def _verify_members(zf: zipfile.ZipFile) -> list[str]:
    names = [info.filename for info in zf.infolist() if not info.is_dir()]
    if MANIFEST_NAME not in names:
        return [f"{MANIFEST_NAME} is missing"]
    try:
        manifest = json.loads(zf.read(MANIFEST_NAME))
        listed = {str(f["path"]): (int(f["size"]), str(f["sha256"])) for f in manifest["files"]}
        if len(listed) != len(manifest["files"]):
            return [f"{MANIFEST_NAME} lists a path twice"]
    except (ValueError, KeyError, TypeError) as exc:
        return [f"{MANIFEST_NAME} is not an {FORMAT} manifest ({type(exc).__name__}: {exc})"]
    problems = []
    if manifest.get("format") != FORMAT:
        problems.append(f"{MANIFEST_NAME}: format {manifest.get('format')!r}, expected {FORMAT}")
    stored = Counter(n for n in names if n != MANIFEST_NAME)  # sets: archives of 10^5 files
    present = set(stored)
    for name in sorted(n for n, times in stored.items() if times > 1):
        problems.append(f"{name}: stored twice in the archive")
    for name in sorted(present - set(listed)):
        problems.append(f"{name}: in the archive but not in the manifest (extra file)")
    for name, (size, sha256) in listed.items():
        if name not in present:
            problems.append(f"{name}: in the manifest but missing from the archive")
            continue
        try:
            actual_size, actual_sha = _digest(zf, name)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            problems.append(f"{name}: unreadable ({exc})")
            continue
        if actual_size != size:
            problems.append(f"{name}: {actual_size} bytes, the manifest says {size}")
        elif actual_sha != sha256:
            problems.append(f"{name}: SHA-256 {actual_sha} differs from the manifest's {sha256}")
    return problems


def _digest(zf: zipfile.ZipFile, name: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with zf.open(name) as member:
        while chunk := member.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


# -- many users: resumable, bounded memory -------------------------------------------------


def run_directory(out_dir: Path, *, contract_end: bool, now: datetime) -> Path:
    """Where a run writes: `out_dir` itself, or the contract-end run's directory.

    An unfinished contract-end run (no COMPLETE marker) is resumed in its own directory,
    whatever the date: a run interrupted at midnight must not start over elsewhere.
    """
    if not contract_end:
        return out_dir
    unfinished = sorted(
        d
        for d in (out_dir.glob(f"{CONTRACT_END_PREFIX}*") if out_dir.is_dir() else ())
        if d.is_dir() and not (d / COMPLETE_FILE).exists()
    )
    if unfinished:
        return unfinished[-1]
    return out_dir / f"{CONTRACT_END_PREFIX}{now.astimezone(UTC).date().isoformat()}"


def pending_exports(
    user_ids: Iterable[str], out_dir: Path, *, contract_end: bool = False, now: datetime
) -> Iterator[tuple[str, str]]:
    """(user id, state) for each user, reading only: to_export | already_done | torn."""
    directory = run_directory(out_dir, contract_end=contract_end, now=now)
    for user_id in user_ids:
        final = archive_path(directory, user_id)
        if final.with_name(final.name + TEMP_SUFFIX).exists():
            yield user_id, "torn"
        elif final.exists() and not verify_export(final):
            yield user_id, "already_done"
        else:
            yield user_id, "to_export"


def export_many(
    sources: ExportSources,
    user_ids: Iterable[str],
    out_dir: Path,
    *,
    progress: ExportProgress | None = None,
    now: datetime,
    contract_end: bool = False,
    total: int | None = None,
) -> ExportRun:
    """Export each user in turn; rerun after an interruption to resume.

    A user whose archive exists and verifies is skipped; a torn `.part` is removed and the
    user exported again; an archive that no longer verifies is replaced. A user whose
    export fails (their account is gone, Nextcloud refused) is recorded in `failed` and the
    run goes on: a contract-end run is marked COMPLETE only when nobody failed.
    """
    kind = KIND_CONTRACT_END if contract_end else KIND_USER
    directory = run_directory(out_dir, contract_end=contract_end, now=now)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    _mark_kind(directory, kind)
    if total is None and isinstance(user_ids, Sequence):
        total = len(user_ids)
    run = ExportRun(directory, kind)
    for done, user_id in enumerate(user_ids, 1):
        outcome, detail = _export_one(sources, user_id, directory, now)
        if outcome == "failed":
            run.failed[user_id] = detail
        else:
            setattr(run, outcome, getattr(run, outcome) + 1)
        if progress:
            progress(ExportEvent(user_id, outcome, done, total, detail))
    if contract_end and run.complete:
        completed = {"completed_at": now.astimezone(UTC).isoformat(), "exported": run.exported}
        _write_atomically(directory / COMPLETE_FILE, json.dumps(completed).encode())
    return run


def _export_one(
    sources: ExportSources, user_id: str, directory: Path, now: datetime
) -> tuple[str, str]:
    try:
        final = archive_path(directory, user_id)
        temp = final.with_name(final.name + TEMP_SUFFIX)
        torn = temp.exists()
        if torn:
            temp.unlink()
        elif final.exists() and not verify_export(final):
            return "already_done", ""
        export_user(sources, user_id, directory, now=now)
    except EducloudError as exc:
        return "failed", str(exc)
    return ("redone_torn" if torn else "exported"), ""


def _mark_kind(directory: Path, kind: str) -> None:
    marker = directory / KIND_FILE
    if marker.exists():
        found = export_kind(directory)
        if found != kind:
            raise ExportError(
                f"{directory} holds {found} exports, not {kind}: choose another --output"
            )
        return
    _write_atomically(marker, f"{kind}\n".encode())


def export_kind(directory: Path) -> str:
    """The kind of exports a directory holds (its EXPORT-KIND marker): user | contract_end.

    For `educloud retention`: RETENTION_CATEGORIES maps the kind to its policy category.
    A directory without a valid marker is not an export directory: ExportError.
    """
    marker = directory / KIND_FILE
    try:
        kind = marker.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ExportError(f"{directory} has no readable {KIND_FILE} marker ({exc})") from None
    if kind not in RETENTION_CATEGORIES:
        raise ExportError(f"{marker}: unknown export kind {kind!r}")
    return kind


def export_completed_at(directory: Path) -> datetime | None:
    """When a contract-end run finished (its COMPLETE marker), None while unfinished.

    The retention period of `contract_end_exports` counts from this moment.
    """
    try:
        data = json.loads((directory / COMPLETE_FILE).read_text(encoding="utf-8"))
        return datetime.fromisoformat(str(data["completed_at"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"{directory / COMPLETE_FILE} is unreadable ({exc})") from None


def _write_atomically(path: Path, content: bytes) -> None:
    temp = path.with_name(path.name + TEMP_SUFFIX)
    with temp.open("wb") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, path)
    _fsync_dir(path.parent)


# -- profiles from Keycloak ----------------------------------------------------------------

_PROFILE_FIELDS = ("username", "firstName", "lastName", "email", "emailVerified", "enabled")
_PAGE = 500


class KeycloakProfiles:
    """The realm's accounts, read through a python-keycloak admin connection.

    Only whitelisted fields leave Keycloak: never credentials, required actions or
    federation links. Also lists the user ids to export (--all, --group).
    """

    def __init__(self, admin: Any, realm: str) -> None:
        self.admin = admin
        self.realm = realm

    @classmethod
    def connect(cls, connection: Any) -> KeycloakProfiles:
        """From an educloud.accounts Connection (the data-rights service client)."""
        from educloud.accounts.keycloak_directory import KeycloakDirectory

        return cls(KeycloakDirectory.connect(connection).admin, connection.realm)

    def profile(self, user_id: str) -> dict[str, Any]:
        found = self._get(
            f"find account {user_id}",
            "users",
            username=user_id,
            exact="true",
            briefRepresentation="false",
        )
        reps = [r for r in found or [] if r.get("username") == user_id.lower()]
        if not reps:
            raise ExportError(f"no account {user_id} in realm {self.realm}: check the id")
        rep = reps[0]
        groups = self._get(f"groups of {user_id}", f"users/{rep['id']}/groups")
        profile: dict[str, Any] = {key: rep.get(key) for key in _PROFILE_FIELDS}
        created = rep.get("createdTimestamp")
        profile["createdTimestamp"] = created
        profile["created_at"] = (
            datetime.fromtimestamp(int(created) / 1000, UTC).isoformat() if created else None
        )
        profile["attributes"] = rep.get("attributes") or {}
        profile["groups"] = sorted(str(g.get("path") or g.get("name")) for g in groups or [])
        profile["realm"] = self.realm
        return profile

    def all_user_ids(self) -> Iterator[str]:
        yield from self._paged_usernames("list accounts", "users")

    def group_user_ids(self, group: str) -> Iterator[str]:
        found = self._get(f"find group {group}", "groups", search=group, exact="true")
        matches = [g for g in _flatten(found or []) if g.get("name") == group]
        if not matches:
            raise ExportError(f"no group {group!r} in realm {self.realm}: check its name")
        yield from self._paged_usernames(
            f"members of {group}", f"groups/{matches[0]['id']}/members"
        )

    def count(self) -> int | None:
        value = self._get("count accounts", "users/count")
        return int(value) if isinstance(value, int) else None

    def _paged_usernames(self, what: str, path: str) -> Iterator[str]:
        first = 0
        while True:
            page = self._get(what, path, first=first, max=_PAGE, briefRepresentation="true")
            for rep in page or []:
                if not str(rep["username"]).startswith("service-account-"):
                    yield str(rep["username"])
            if not page or len(page) < _PAGE:
                return
            first += _PAGE

    def _get(self, what: str, path: str, **params: Any) -> Any:
        try:
            response = self.admin.connection.raw_get(f"admin/realms/{self.realm}/{path}", **params)
        except requests.exceptions.RequestException as exc:
            raise ExportError(
                f"{what}: Keycloak unreachable ({type(exc).__name__}); run again when it is back"
            ) from None
        if response.status_code >= 400:
            hint = " (the service client lacks view-users)" if response.status_code == 403 else ""
            raise ExportError(f"{what}: HTTP {response.status_code}{hint}: {response.text[:200]}")
        return response.json() if response.content else None


def _flatten(groups: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for group in groups:
        yield group
        yield from _flatten(group.get("subGroups") or [])


# -- Nextcloud content over WebDAV ---------------------------------------------------------


class StaticCredentials:
    """App passwords known beforehand (tests, or passwords the operator created)."""

    def __init__(self, passwords: dict[str, str]) -> None:
        self._passwords = dict(passwords)

    def __repr__(self) -> str:
        return f"StaticCredentials({sorted(self._passwords)})"

    @contextmanager
    def app_password(self, user_id: str) -> Iterator[str]:
        try:
            yield self._passwords[user_id]
        except KeyError:
            raise ExportError(f"no app password for {user_id} in the given mapping") from None


class WebDavContent:
    """The user's files, calendars and address books, read as the user over WebDAV."""

    name = "webdav"

    def __init__(
        self,
        base_url: str,
        credentials: CredentialProvider,
        *,
        verify: bool | str = True,
        timeout: float = 60.0,
        chunk_size: int = CHUNK,
    ) -> None:
        self.base_url = base_url
        self.credentials = credentials
        self.verify = verify
        self.timeout = timeout
        self.chunk_size = chunk_size

    def items(self, user_id: str) -> Iterator[ExportItem]:
        from educloud.clients.nextcloud import NextcloudClient, NextcloudRequestError

        with ExitStack() as stack:
            try:
                password = stack.enter_context(self.credentials.app_password(user_id))
            except NoNextcloudAccountError:
                return  # never logged in to Nextcloud: nothing there to export
            client = NextcloudClient(
                self.base_url, user_id, password, verify=self.verify, timeout=self.timeout
            )
            size = self.chunk_size
            for entry in client.walk():
                if not entry.is_dir:
                    yield ExportItem(
                        f"files/{entry.path}",
                        partial(client.stream_download, entry.path, size),
                        entry.last_modified,
                    )
            for listing, stream, folder, suffix in (
                (client.list_calendars, client.stream_calendar, "calendars", "ics"),
                (client.list_address_books, client.stream_address_book, "contacts", "vcf"),
            ):
                try:
                    collections = listing()
                except NextcloudRequestError as exc:
                    if exc.http_status == 404:  # no DAV home: the app holds nothing
                        continue
                    raise
                for collection in collections:
                    yield ExportItem(
                        f"{folder}/{collection.name}.{suffix}",
                        partial(stream, collection.name, size),
                    )


# -- Nextcloud through occ (a real server, over SSH) ---------------------------------------


class OccRunner(Protocol):
    def occ(self, args: Sequence[str], *, secret_output: bool = False) -> str:
        """Run `occ ARGS...` as Nextcloud's system user; its standard output."""
        ...

    def fetch(self, remote_path: str) -> Iterator[bytes]:
        """A file of the Nextcloud host, in chunks."""
        ...

    def remove(self, remote_path: str) -> None: ...

    def temp_dir(self) -> str:
        """A new directory Nextcloud's system user can write, on the Nextcloud host."""
        ...


class SshOcc:
    """occ on the Nextcloud host over SSH (as the inventory's ansible_user, then sudo)."""

    def __init__(
        self,
        ssh: Sequence[str],
        *,
        install_dir: str = "/var/www/nextcloud",
        system_user: str = "nextcloud",
        timeout: float = 3600.0,
    ) -> None:
        self.ssh = list(ssh)  # e.g. ["ssh", "-i", KEY, "-o", "...", "root@198.18.0.11"]
        self.install_dir = install_dir
        self.system_user = system_user
        self.timeout = timeout

    @classmethod
    def from_inventory(cls, inventory: Path) -> tuple[SshOcc, str]:
        """occ on the inventory's first nextcloud host, and Nextcloud's base URL there."""
        from educloud.deployment import inventory as inventory_vars

        hosts = [h for h in inventory_vars.load(inventory) if "nextcloud" in h.groups]
        if not hosts:
            raise ExportError(f"inventory {inventory} has no host in the nextcloud group")
        host = hosts[0]
        variables = host.variables
        runner = cls(
            host.ssh_argv(),
            install_dir=str(variables.get("nextcloud_install_dir", "/var/www/nextcloud")),
            system_user=str(variables.get("nextcloud_user", "nextcloud")),
        )
        return runner, f"https://{variables.get('nextcloud_hostname', host.address)}"

    def _remote(self, argv: Sequence[str]) -> list[str]:
        command = ["sudo", "-n", "-u", self.system_user, *argv]
        return [*self.ssh, "--", shlex.join(command)]

    def occ(self, args: Sequence[str], *, secret_output: bool = False) -> str:
        argv = self._remote(["php", f"{self.install_dir}/occ", "--no-interaction", *args])
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=self.timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ExportError(f"occ {args[0]}: ssh failed ({type(exc).__name__})") from None
        if done.returncode != 0:
            # stdout may hold a secret (an app password): then only stderr is shown.
            said = done.stderr if secret_output else done.stderr + "\n" + done.stdout
            detail = " ".join(said.split())[-300:] or "no message"
            raise ExportError(
                f"occ {args[0]} on {self.ssh[-1]} failed (exit {done.returncode}): {detail}; "
                f"check that Nextcloud is installed in {self.install_dir} there and that "
                f"the SSH user may run sudo -u {self.system_user}"
            )
        return done.stdout

    def fetch(self, remote_path: str) -> Iterator[bytes]:
        with subprocess.Popen(
            self._remote(["cat", "--", remote_path]), stdout=subprocess.PIPE
        ) as cat:
            stdout: IO[bytes] = cat.stdout  # type: ignore[assignment]
            while chunk := stdout.read(CHUNK):
                yield chunk
        if cat.returncode != 0:
            raise ExportError(f"cannot read {remote_path} on the Nextcloud host (ssh cat failed)")

    def remove(self, remote_path: str) -> None:
        subprocess.run(self._remote(["rm", "-rf", "--", remote_path]), check=False, timeout=300)

    def temp_dir(self) -> str:
        done = subprocess.run(
            self._remote(["mktemp", "-d", "-t", "educloud-export.XXXXXX"]),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0 or not done.stdout.strip():
            raise ExportError(f"cannot create a directory on the Nextcloud host: {done.stderr}")
        return done.stdout.strip()


class LocalOcc(SshOcc):
    """occ on this very host (the retention timer runs beside Nextcloud), as its user.

    The retention unit runs as Nextcloud's account when Nextcloud is in the run (its
    NoNewPrivileges rules out sudo): occ then runs directly. Root switches with runuser;
    any other account cannot run occ, and is told so before anything is tried.
    """

    def __init__(
        self,
        *,
        install_dir: str = "/var/www/nextcloud",
        system_user: str = "nextcloud",
        timeout: float = 3600.0,
    ) -> None:
        super().__init__(["this host"], install_dir=install_dir, system_user=system_user)
        self.timeout = timeout

    def _remote(self, argv: Sequence[str]) -> list[str]:
        uid = os.geteuid()
        current = _account_name(uid)
        if current == self.system_user:
            return list(argv)
        if uid == 0:
            return ["runuser", "-u", self.system_user, "--", *argv]
        raise ExportError(
            f"occ must run as {self.system_user}, the owner of Nextcloud's config.php, and "
            f"this process runs as {current}: run it as {self.system_user} or as root (the "
            "data_rights role runs the retention unit as Nextcloud's account when "
            "data_rights_nextcloud_url is set)"
        )


def _account_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def nextcloud_content(
    runner: OccRunner, base_url: str, *, verify: bool | str = True, webdav_only: bool = False
) -> ContentSource:
    """Nextcloud's own user_migration export where it is enabled, else WebDAV as the user
    with a short-lived app password from occ."""
    if not webdav_only and user_migration_enabled(runner):
        return UserMigrationContent(runner)
    return WebDavContent(base_url, OccAppPasswords(runner), verify=verify)


_APP_PASSWORD = re.compile(r"[A-Za-z0-9]{32,}")


class OccAppPasswords:
    """A short-lived app password per user: `occ user:auth-tokens:add`, deleted after.

    nextcloud/server core/Command/User/AuthTokens/Add.php prints "app password:" then the
    token (72 letters and digits); without the login password (non-interactive) the token
    cannot unlock what needs it (login-credential external storage), plain files are read.
    The token's id, for `user:auth-tokens:delete <uid> <id>`, is the one the listing
    (`user:auth-tokens:list --output=json`) did not show before.
    """

    def __init__(self, runner: OccRunner) -> None:
        self.runner = runner

    def _token_ids(self, user_id: str) -> set[int]:
        try:
            out = self.runner.occ(["user:auth-tokens:list", "--output=json", user_id])
        except ExportError as exc:
            if "user not found" in str(exc):  # ListCommand.php's answer for an unknown uid
                raise NoNextcloudAccountError(f"{user_id} has no Nextcloud account") from None
            raise
        try:
            return {int(token["id"]) for token in json.loads(out)}
        except (ValueError, KeyError, TypeError):
            raise ExportError(f"occ user:auth-tokens:list {user_id}: unexpected output") from None

    @contextmanager
    def app_password(self, user_id: str) -> Iterator[str]:
        before = self._token_ids(user_id)
        out = self.runner.occ(["user:auth-tokens:add", user_id], secret_output=True)
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        if not lines or not _APP_PASSWORD.fullmatch(lines[-1]):
            raise ExportError(f"occ user:auth-tokens:add {user_id} printed no app password")
        try:
            created = self._token_ids(user_id) - before
        except ExportError as exc:
            raise ExportError(
                f"{exc}; an app password named 'cli' was created for {user_id}: delete it "
                f"(occ user:auth-tokens:list {user_id}, then user:auth-tokens:delete)"
            ) from None
        try:
            yield lines[-1]
        finally:
            for token_id in sorted(created):
                self.runner.occ(["user:auth-tokens:delete", user_id, str(token_id)])


def user_migration_enabled(runner: OccRunner) -> bool:
    """Whether the user_migration app is enabled (`occ app:list --output=json`)."""
    out = runner.occ(["app:list", "--output=json"])
    try:
        return "user_migration" in (json.loads(out).get("enabled") or {})
    except (ValueError, AttributeError):
        raise ExportError("occ app:list: unexpected output") from None


class UserMigrationContent:
    """Nextcloud's own export (user_migration app: `occ user:export <uid> <folder>`).

    The app writes `<folder>/<uid>_<date>.zip` (lib/Command/Export.php) with the files,
    versions, comments, tags, calendars, contacts and settings; the archive embeds it as
    `nextcloud/<that name>`, importable as is into another Nextcloud (`occ user:import`).
    """

    name = "user_migration"

    def __init__(self, runner: OccRunner) -> None:
        self.runner = runner

    def items(self, user_id: str) -> Iterator[ExportItem]:
        folder = self.runner.temp_dir()
        try:
            try:
                out = self.runner.occ(["user:export", user_id, folder])
            except ExportError as exc:
                if f"Unknown user <{user_id}>" in str(exc):  # Export.php, no such account
                    return  # never logged in to Nextcloud: nothing there to export
                raise
            match = re.search(r"Export saved in (\S+\.zip)\s*$", out)
            if not match:
                raise ExportError(f"occ user:export {user_id}: no archive reported ({out[-200:]})")
            path = match.group(1)
            yield ExportItem(
                f"nextcloud/{PurePosixPath(path).name}", partial(self.runner.fetch, path)
            )
        finally:
            self.runner.remove(folder)
