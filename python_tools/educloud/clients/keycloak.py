"""Keycloak's admin REST API for one realm, through a service account (client credentials).

python-keycloak underneath: it gets and refreshes the token and keeps one HTTP session.
`connect_admin` logs in; `RealmAdmin` sends the admin calls of one realm and turns every
failure a user can cause into one `KeycloakAdminError` line that says what to check. The
accounts' directory (`educloud.accounts.keycloak_directory`), the statistics, retention and
the exports build on it; where the connection comes from for a deployment is
`educloud.deployment.keycloak`.

Admin REST API: https://www.keycloak.org/docs-api/latest/rest-api/index.html
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import requests
from keycloak import KeycloakAdmin, KeycloakOpenIDConnection
from keycloak.exceptions import (
    KeycloakAuthenticationError,
    KeycloakConnectionError,
    KeycloakError,
)

from educloud.errors import EducloudError

PAGE = 500
EVENTS_PAGE = 1000
MASTER_REALM = "master"  # Keycloak's own administration realm, in every deployment
EventKind = Literal["events", "admin-events"]  # the stored login events, the admin events


class KeycloakAdminError(EducloudError):
    """The realm could not be read or changed."""

    status: int | None = None  # Keycloak's HTTP status when it answered with an error


@dataclass(frozen=True)
class Connection:
    """Where the realm is and the service account that manages it."""

    server_url: str  # the admin URL (Keycloak's hostname-admin), e.g. https://auth-admin.example
    realm: str
    client_id: str
    client_secret: str = field(repr=False)
    verify: bool | str = True
    timeout: float = 60.0


def connect_admin(connection: Connection, *, pool: int = 4) -> KeycloakAdmin:
    """An admin client logged in with the service account's client credentials.

    Every failure a user can cause (wrong secret, unreachable server, missing role) is a
    KeycloakAdminError with one line saying what to check.
    """
    try:
        oidc = KeycloakOpenIDConnection(
            server_url=connection.server_url,
            realm_name=connection.realm,
            user_realm_name=connection.realm,
            client_id=connection.client_id,
            client_secret_key=connection.client_secret,
            verify=connection.verify,
            timeout=int(connection.timeout),
            pool_maxsize=max(pool, 4),
        )
        admin = KeycloakAdmin(connection=oidc)
        admin.connection.get_token()
    except KeycloakAuthenticationError as exc:
        raise KeycloakAdminError(
            f"Keycloak refused the client {connection.client_id!r} of realm "
            f"{connection.realm!r}: check its client secret (HTTP {exc.response_code})"
        ) from None
    except (requests.exceptions.RequestException, KeycloakConnectionError) as exc:
        raise KeycloakAdminError(
            f"Keycloak at {connection.server_url} is unreachable "
            f"({type(exc).__name__}): check the URL and that the server is up"
        ) from None
    except KeycloakError as exc:
        raise KeycloakAdminError(
            f"Keycloak at {connection.server_url} refused the service account "
            f"{connection.client_id!r} (HTTP {exc.response_code}): {_reason(exc)}"
        ) from None
    return admin


class RealmAdmin:
    """One realm's admin REST API, through a logged-in admin client."""

    # What to do when Keycloak cannot be reached, appended to the error.
    again = "run the command again when it is back"

    def __init__(self, admin: KeycloakAdmin, realm: str) -> None:
        self.admin = admin
        self.realm = realm

    @classmethod
    def connect(cls, connection: Connection) -> Self:
        """Log in with the service account's client credentials (clear errors otherwise)."""
        return cls(connect_admin(connection), connection.realm)

    def call(
        self,
        what: str,
        method: str,
        path: str,
        payload: Any = None,
        *,
        raw: bool = False,
        needs: str = "a realm-management role: see docs/accounts.md",
        **params: Any,
    ) -> Any:
        """`method` on admin/realms/{realm}/`path`: the JSON answer (None when empty), or the
        response itself with `raw`. `what` names the call in errors; `needs` says what the
        service account lacks when Keycloak answers 403. An empty `path` is the realm itself."""
        url = f"admin/realms/{self.realm}/{path}" if path else f"admin/realms/{self.realm}"
        conn = self.admin.connection
        try:
            if method == "GET":
                response = conn.raw_get(url, **params)
            elif method == "POST":
                response = conn.raw_post(url, data=json.dumps(payload), **params)
            elif method == "PUT":
                response = conn.raw_put(url, data=json.dumps(payload or {}), **params)
            else:
                response = conn.raw_delete(url, **params)
        except (requests.exceptions.RequestException, KeycloakConnectionError) as exc:
            # python-keycloak wraps an unreachable server in KeycloakConnectionError.
            raise KeycloakAdminError(
                f"{what}: Keycloak unreachable ({type(exc).__name__}); {self.again}"
            ) from None
        except KeycloakError as exc:
            # Raised when the service account's token cannot be renewed.
            raise KeycloakAdminError(
                f"{what}: the service account's session could not be renewed "
                f"(HTTP {exc.response_code}): {_reason(exc)}"
            ) from None
        if response.status_code >= 400:
            hint = f" (the service account needs {needs})" if response.status_code == 403 else ""
            error = KeycloakAdminError(
                f"{what}: HTTP {response.status_code}{hint}: {response.text[:200]}"
            )
            error.status = response.status_code
            raise error
        if raw:
            return response
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise KeycloakAdminError(
                f"{what}: Keycloak answered HTTP {response.status_code} with no JSON: is "
                f"{conn.server_url} Keycloak's admin URL?"
            ) from None

    def paged(
        self, what: str, path: str, *, size: int = PAGE, first: int = 0, **query: Any
    ) -> Iterator[dict[str, Any]]:
        """Every item of a listing, `size` a request, from `first` on."""
        while True:
            page = self.call(what, "GET", path, first=first, max=size, **query)
            yield from page
            if len(page) < size:
                return
            first += size

    def events(self, what: str, **query: Any) -> Iterator[dict[str, Any]]:
        """The realm's stored user events matching `query` (type, dateFrom, user...)."""
        return self.paged(
            what, "events", size=EVENTS_PAGE, needs="the realm-management role view-events", **query
        )

    def settings(self) -> dict[str, Any]:
        """The realm's representation (GET admin/realms/{realm}): its events' settings
        (eventsExpiration, attributes.adminEventsExpiration) among the others."""
        what = f"read the settings of realm {self.realm}"
        found = self.call(what, "GET", "", needs="the realm-management role view-realm")
        if not isinstance(found, dict):
            raise KeycloakAdminError(f"{what}: Keycloak answered no realm representation")
        return found

    def event_page(self, kind: EventKind, **query: Any) -> list[dict[str, Any]]:
        """One request for the realm's stored `events` (logins) or `admin-events` matching
        `query` (dateTo, first, max...): the listing Keycloak answered, or KeycloakAdminError
        when it answered anything else."""
        what = f"read the {kind} of realm {self.realm}"
        found = self.call(what, "GET", kind, needs="the realm-management role view-events", **query)
        if not isinstance(found, list):
            raise KeycloakAdminError(f"{what}: Keycloak answered no listing")
        return found

    def users(self, what: str, **query: Any) -> Iterator[dict[str, Any]]:
        """Every user matching `query` (enabled, username, exact, briefRepresentation...)."""
        return self.paged(what, "users", needs="the realm-management role manage-users", **query)

    def delete_user(self, user_id: str, what: str) -> bool:
        """Delete a user by id; False when Keycloak has no such user (deleted already)."""
        try:
            needs = "the realm-management role manage-users"
            self.call(what, "DELETE", f"users/{user_id}", needs=needs)
        except KeycloakAdminError as exc:
            if exc.status == 404:
                return False
            raise
        return True


def _reason(exc: KeycloakError) -> str:
    body = exc.response_body
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or exc)
    return text[:200]
