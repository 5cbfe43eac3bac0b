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

The profile comes from Keycloak (`KeycloakProfiles`, below), the Nextcloud content from a
ContentSource of educloud.portability.sources (WebDAV as the user, or user_migration
through occ, educloud.clients.nextcloud.occ).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any, Protocol, TypeVar

from educloud.clients.keycloak import Connection, KeycloakAdminError, RealmAdmin, connect_admin
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
        self._api = RealmAdmin(admin, realm)

    @classmethod
    def connect(cls, connection: Connection) -> KeycloakProfiles:
        """From a service client's Connection (the data-rights client)."""
        return cls(connect_admin(connection), connection.realm)

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
        try:
            for rep in self._api.paged(what, path, size=_PAGE, briefRepresentation="true"):
                if not str(rep["username"]).startswith("service-account-"):
                    yield str(rep["username"])
        except KeycloakAdminError as exc:
            raise ExportError(str(exc)) from None

    def _get(self, what: str, path: str, **params: Any) -> Any:
        try:
            return self._api.call(what, "GET", path, needs="view-users", **params)
        except KeycloakAdminError as exc:
            raise ExportError(str(exc)) from None


def _flatten(groups: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for group in groups:
        yield group
        yield from _flatten(group.get("subGroups") or [])
