"""occ, as educloud.portability.export runs it on the Nextcloud host: a double, not Nextcloud.

Implements educloud.clients.nextcloud.occ.OccRunner over a NextcloudApiDouble (its accounts
and files) and a local directory standing for the Nextcloud host's disk. It answers what
the commands print in Nextcloud's code:

- user:auth-tokens:add <uid> (nextcloud/server core/Command/User/AuthTokens/Add.php):
  "app password:" then a 72-character token of letters and digits; for an unknown account
  "Account does not exist", exit 1. The token is then accepted by the API double.
- user:auth-tokens:list --output=json <uid> (ListCommand.php): the tokens without their
  secret; "user not found", exit 1.
- user:auth-tokens:delete <uid> <id> (Delete.php): the token stops working.
- app:list --output=json: {"enabled": {...}, "disabled": {...}}.
- user:export <uid> <folder> (user_migration lib/Command/Export.php): writes
  <folder>/<uid>_<Y-m-d_H-i-s>.zip, prints "Export saved in <path>"; "Unknown user <uid>".

A failing command raises OccError with occ's output, as SshOcc does.
"""

from __future__ import annotations

import itertools
import json
import secrets
import shutil
import string
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.doubles.nextcloud_api_double import NextcloudApiDouble

from educloud.clients.nextcloud.occ import OccError

_TOKEN_ALPHABET = string.ascii_letters + string.digits


class OccDouble:
    def __init__(
        self, nextcloud: NextcloudApiDouble, host_dir: Path, apps: Sequence[str] = ()
    ) -> None:
        self.nextcloud = nextcloud
        self.host_dir = host_dir
        self.apps = set(apps)
        self.tokens: dict[str, dict[int, str]] = {}
        self.calls: list[list[str]] = []
        self._ids = itertools.count(1)

    def occ(self, args: Sequence[str], *, secret_output: bool = False) -> str:
        self.calls.append(list(args))
        command, rest = args[0], [a for a in args[1:] if not a.startswith("--")]
        if command == "app:list":
            enabled = {app: "1.0.0" for app in sorted(self.apps | {"dav", "files"})}
            return json.dumps({"enabled": enabled, "disabled": {}})
        if command == "user:auth-tokens:list":
            self._account(rest[0], "user not found")
            tokens = self.tokens.get(rest[0], {})
            return json.dumps([{"id": i, "name": "cli", "type": 1} for i in sorted(tokens)])
        if command == "user:auth-tokens:add":
            self._account(rest[0], "Account does not exist")
            token = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(72))
            self.tokens.setdefault(rest[0], {})[next(self._ids)] = token
            self.nextcloud.app_passwords.setdefault(rest[0], set()).add(token)
            return f"app password:\n{token}\n"
        if command == "user:auth-tokens:delete":
            token = self.tokens.get(rest[0], {}).pop(int(rest[1]), None)
            if token is not None:
                self.nextcloud.app_passwords[rest[0]].discard(token)
            return ""
        if command == "user:export":
            return self._user_export(rest[0], Path(rest[1]))
        raise OccError(f"occ {command} failed (exit 1): Command not defined (double)")

    def _account(self, user_id: str, message: str) -> None:
        if user_id not in self.nextcloud.accounts:
            raise OccError(f"occ failed (exit 1): {message}")

    def _user_export(self, user_id: str, folder: Path) -> str:
        if "user_migration" not in self.apps:
            raise OccError('occ failed (exit 1): Command "user:export" is not defined.')
        self._account(user_id, f"[ERROR] Unknown user <{user_id}>")
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
        path = folder / f"{user_id}_{stamp}.zip"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("migrator_versions.json", json.dumps({"files": 1}))
            for name, node in self.nextcloud.files.get(user_id, {}).items():
                if name and not node.is_dir:
                    zf.writestr(f"files/files/{name}", node.content)
        return f"Exporting files…\nExport saved in {path}\n"

    def fetch(self, remote_path: str) -> Iterator[bytes]:
        with self._on_host(remote_path).open("rb") as source:
            while chunk := source.read(64 * 1024):
                yield chunk

    def remove(self, remote_path: str) -> None:
        shutil.rmtree(self._on_host(remote_path), ignore_errors=True)

    def temp_dir(self) -> str:
        return tempfile.mkdtemp(prefix="educloud-export.", dir=self.host_dir)

    def _on_host(self, remote_path: str) -> Path:
        path = Path(remote_path).resolve()
        if not path.is_relative_to(self.host_dir.resolve()):
            raise AssertionError(f"{remote_path} is outside the double's host directory")
        return path
