"""Initial passwords, journaled before they reach Keycloak, so an interrupted apply loses none.

The journal (`pending-credentials.jsonl`, mode 0600 in a 0700 directory) gets an account's
password, flushed to disk, before the batch that creates the account is sent. A resumed
apply reuses the journaled password of an account it creates (so a sheet is never wrong)
and prints the sheets of every journaled account that exists; the journal is removed once
the sheets are written. Passwords are never logged or printed: only the sheets hold them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from educloud.accounts.sheets import CredentialSlip, generate_password
from educloud.errors import EducloudError

JOURNAL_NAME = "pending-credentials.jsonl"


class CredentialJournal:
    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(state_dir, 0o700)
        self.path = state_dir / JOURNAL_NAME
        self._slips: dict[str, CredentialSlip] = {}
        if self.path.exists():
            content = self.path.read_bytes()
            if content and not content.endswith(b"\n"):
                # A line cut by a kill: its batch was never sent. Cut it off, so that the
                # next entry starts on a line of its own.
                content = content[: content.rfind(b"\n") + 1]
                with open(self.path, "r+b") as journal:
                    journal.truncate(len(content))
            for number, line in enumerate(content.decode("utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    slip = CredentialSlip(**json.loads(line))
                except (ValueError, TypeError):
                    raise EducloudError(
                        f"{self.path} line {number} is damaged: restore it from the sheets "
                        "already printed, or remove the line and reset those passwords"
                    ) from None
                self._slips[slip.account_id] = slip

    def __len__(self) -> int:
        return len(self._slips)

    def password_for(self, slip_without_password: CredentialSlip) -> str:
        """The account's journaled password, or a new one journaled first."""
        known = self._slips.get(slip_without_password.account_id)
        if known is not None:
            return known.password
        slip = CredentialSlip(**{**_fields(slip_without_password), "password": generate_password()})
        new_file = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, (json.dumps(_fields(slip), ensure_ascii=False) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        if new_file:  # the file's name must survive a crash too
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        self._slips[slip.account_id] = slip
        return slip.password

    def slips(self) -> Iterator[CredentialSlip]:
        return iter(self._slips.values())

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        self._slips.clear()


def _fields(slip: CredentialSlip) -> dict[str, str]:
    return {
        "account_id": slip.account_id,
        "given_name": slip.given_name,
        "family_name": slip.family_name,
        "uai": slip.uai,
        "class_label": slip.class_label,
        "login": slip.login,
        "password": slip.password,
    }
