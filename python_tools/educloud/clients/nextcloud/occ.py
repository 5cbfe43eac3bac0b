"""occ, Nextcloud's command line, on the Nextcloud host: the transports and what uses them.

`SshOcc` runs it over SSH (as the inventory's ansible_user, then sudo), `LocalOcc` on this
very host (the retention timer runs beside Nextcloud); both are `OccRunner`s, as are the
tests' doubles. `OccAppPasswords` makes a short-lived app password per user with it, so
that a tool reads a user's files over WebDAV as that user (exports, moderation).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Protocol

from educloud.clients.nextcloud.http import DOWNLOAD_CHUNK, NextcloudError
from educloud.errors import EducloudError

_APP_PASSWORD = re.compile(r"[A-Za-z0-9]{32,}")


class OccError(NextcloudError):
    """occ could not be run, or failed; the message says why and what to do."""


class NoNextcloudAccountError(NextcloudError):
    """The user has no Nextcloud account (user_oidc creates it at the first login): there
    is nothing of theirs in Nextcloud."""


class OccRunner(Protocol):
    def occ(self, args: Sequence[str], *, secret_output: bool = False) -> str:
        """Run `occ ARGS...` as Nextcloud's system user; its standard output. A failure is
        an EducloudError whose message carries occ's output."""
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
            raise OccError(f"inventory {inventory} has no host in the nextcloud group")
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
            raise OccError(f"occ {args[0]}: ssh failed ({type(exc).__name__})") from None
        if done.returncode != 0:
            # stdout may hold a secret (an app password): then only stderr is shown.
            said = done.stderr if secret_output else done.stderr + "\n" + done.stdout
            detail = " ".join(said.split())[-300:] or "no message"
            raise OccError(
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
            while chunk := stdout.read(DOWNLOAD_CHUNK):
                yield chunk
        if cat.returncode != 0:
            raise OccError(f"cannot read {remote_path} on the Nextcloud host (ssh cat failed)")

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
            raise OccError(f"cannot create a directory on the Nextcloud host: {done.stderr}")
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
        raise OccError(
            f"occ must run as {self.system_user}, the owner of Nextcloud's config.php, and "
            f"this process runs as {current}: run it as {self.system_user} or as root (the "
            "retention role runs the retention unit as Nextcloud's account when "
            "retention_nextcloud_url is set)"
        )


def _account_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


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
        except EducloudError as exc:
            if "user not found" in str(exc):  # ListCommand.php's answer for an unknown uid
                raise NoNextcloudAccountError(f"{user_id} has no Nextcloud account") from None
            raise
        try:
            return {int(token["id"]) for token in json.loads(out)}
        except (ValueError, KeyError, TypeError):
            raise OccError(f"occ user:auth-tokens:list {user_id}: unexpected output") from None

    @contextmanager
    def app_password(self, user_id: str) -> Iterator[str]:
        before = self._token_ids(user_id)
        out = self.runner.occ(["user:auth-tokens:add", user_id], secret_output=True)
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        if not lines or not _APP_PASSWORD.fullmatch(lines[-1]):
            raise OccError(f"occ user:auth-tokens:add {user_id} printed no app password")
        try:
            created = self._token_ids(user_id) - before
        except EducloudError as exc:
            raise OccError(
                f"{exc}; an app password named 'cli' was created for {user_id}: delete it "
                f"(occ user:auth-tokens:list {user_id}, then user:auth-tokens:delete)"
            ) from None
        try:
            yield lines[-1]
        finally:
            for token_id in sorted(created):
                self.runner.occ(["user:auth-tokens:delete", user_id, str(token_id)])
