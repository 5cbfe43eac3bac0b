"""How the accounts' model is stored in the realm: the attributes `educloud accounts` sets
on users and groups, and the Keycloak representations of `AccountState` and `GroupState`
both ways (UserRepresentation, GroupRepresentation of the admin REST API).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from educloud.accounts.model import AccountState, GroupKind, GroupState, Login, Profile
from educloud.clients.keycloak import KeycloakAdminError

# Attributes the realm's user profile declares for this tool (roles/keycloak vars/main.yml).
ATTR_PROFILE = "educloud_profile"
ATTR_LOGIN = "educloud_login"
ATTR_END = "educloud_end_date"
ATTR_DEPARTED = "educloud_departed_on"
# Group attributes (groups have no declared profile).
GATTR_KIND = "educloud_kind"
GATTR_UAI = "educloud_uai"
GATTR_LABEL = "educloud_label"
GATTR_YEAR = "educloud_year"
GATTR_ARCHIVED = "educloud_archived_on"


class KeycloakDirectoryError(KeycloakAdminError):
    """The realm's accounts could not be read or changed."""


def _one(attrs: Mapping[str, Sequence[str]] | None, name: str) -> str | None:
    values = (attrs or {}).get(name) or []
    return values[0] if values else None


def _date(value: str | None, where: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        raise KeycloakDirectoryError(
            f"{where}: {value!r} is not a date YYYY-MM-DD (edited by hand in the admin "
            "console?): correct it there, then run again"
        ) from None


def user_representation(account: AccountState) -> dict[str, Any]:
    """The UserRepresentation of a managed account (without groups or credentials)."""
    attributes = {ATTR_PROFILE: [str(account.profile)], ATTR_LOGIN: [str(account.login)]}
    if account.end_date:
        attributes[ATTR_END] = [account.end_date.isoformat()]
    if account.departed_on:
        attributes[ATTR_DEPARTED] = [account.departed_on.isoformat()]
    return {
        "username": account.id,
        "firstName": account.given_name,
        "lastName": account.family_name,
        # "" clears a stored address (null would keep it).
        "email": account.email or "",
        "emailVerified": bool(account.email),
        "enabled": account.enabled,
        "attributes": attributes,
    }


def group_representation(group: GroupState) -> dict[str, Any]:
    attributes = {GATTR_KIND: [str(group.kind)], GATTR_UAI: [group.uai]}
    if group.label:
        attributes[GATTR_LABEL] = [group.label]
    if group.year is not None:
        attributes[GATTR_YEAR] = [str(group.year)]
    if group.archived_on:
        attributes[GATTR_ARCHIVED] = [group.archived_on.isoformat()]
    return {"name": group.name, "path": f"/{group.name}", "attributes": attributes}


def group_state(rep: Mapping[str, Any]) -> GroupState | None:
    attrs = rep.get("attributes") or {}
    kind = _one(attrs, GATTR_KIND)
    if kind not in {k.value for k in GroupKind}:
        return None  # not managed by this tool
    year = _one(attrs, GATTR_YEAR)
    if year is not None and not year.isdigit():
        raise KeycloakDirectoryError(
            f"group {rep['name']}: {GATTR_YEAR} {year!r} is not a year: correct it in the "
            "admin console, then run again"
        )
    return GroupState(
        name=sys.intern(rep["name"]),
        kind=GroupKind(kind),
        uai=sys.intern(_one(attrs, GATTR_UAI) or ""),
        label=_one(attrs, GATTR_LABEL) or "",
        year=int(year) if year else None,
        archived_on=_date(_one(attrs, GATTR_ARCHIVED), f"group {rep['name']}"),
    )


def account_state(rep: Mapping[str, Any], groups: frozenset[str], uai: str) -> AccountState | None:
    attrs = rep.get("attributes") or {}
    profile = _one(attrs, ATTR_PROFILE)
    if profile not in {p.value for p in Profile}:
        return None
    login = _one(attrs, ATTR_LOGIN)
    where = f"user {rep['username']}"
    return AccountState(
        id=rep["username"],
        given_name=rep.get("firstName") or "",
        family_name=rep.get("lastName") or "",
        email=rep.get("email") or None,
        profile=Profile(profile),
        groups=groups,
        enabled=bool(rep.get("enabled")),
        end_date=_date(_one(attrs, ATTR_END), where),
        departed_on=_date(_one(attrs, ATTR_DEPARTED), where),
        login=Login(login) if login in {v.value for v in Login} else Login.FEDERATED,
        uai=uai,
    )
