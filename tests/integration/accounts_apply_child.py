"""`apply_file` on a scratch realm, in a process of its own: the resume test kills it.

Reads its settings as JSON on stdin (the master admin's password among them, so that it
never appears in the process list); prints nothing but a final "done".
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

from keycloak import KeycloakAdmin

from educloud.accounts.keycloak_directory import ImportPath, KeycloakDirectory
from educloud.accounts.policy import load_policy
from educloud.accounts.sync import apply_file
from educloud.netpin import pinned_names


def main() -> None:
    settings = json.load(sys.stdin)
    with pinned_names(settings["pins"]):
        admin = KeycloakAdmin(
            server_url=settings["admin_url"],
            client_id=settings["automation_client_id"],
            client_secret_key=settings["automation_client_secret"],
            realm_name="master",
            verify=settings["ca_file"],
        )
        directory = KeycloakDirectory(admin, settings["realm"])
        directory.batch_size = int(settings["batch_size"])
        apply_file(
            Path(settings["file"]),
            mapping="canonical",
            encoding=None,
            policy=load_policy(),
            directory=directory,
            state_dir=Path(settings["state_dir"]),
            login_url="https://cloud.educloud.test",
            today=date.fromisoformat(settings["today"]),
            year=int(settings["year"]),
            path=ImportPath(settings["path"]),
        )
    print("done")


if __name__ == "__main__":
    main()
