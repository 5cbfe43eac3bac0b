"""The Nextcloud API double's OCS routes: provisioning (users, groups), shares, group folders.

Part of tests.doubles.nextcloud_api_double, which says what it models and from which of
Nextcloud's files; each answer below names its own.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, unquote

from tests.doubles.nextcloud_model import (
    PERMISSION_ALL,
    PERMISSION_CREATE,
    PERMISSION_DELETE,
    PERMISSION_READ,
    SHARE_GROUP,
    SHARE_LINK,
    SHARE_USER,
    Account,
    DoubleState,
    GroupFolderRecord,
    OcsError,
    Reply,
    ShareRecord,
    clean,
    link_password_hash,
    ocs_reply,
    page,
)

# password_policy (an app the nextcloud role enables) refuses an account password shorter
# than its minLength, 10 by default (password_policy lib/PasswordPolicyConfig.php
# getMinLength; lib/PasswordValidator.php: "Password needs to be at least %s characters
# long."); the provisioning API turns the HintException into OCS 107
# (apps/provisioning_api/lib/Controller/UsersController.php addUser and editUser).
PASSWORD_MIN_LENGTH = 10


def _password_policy(password: str) -> None:
    if password and len(password) < PASSWORD_MIN_LENGTH:
        raise OcsError(107, f"Password needs to be at least {PASSWORD_MIN_LENGTH} characters long.")


class OcsRoutes(DoubleState):
    """/ocs/v1.php, /ocs/v2.php and the groupfolders app's OCS routes."""

    def _ocs(
        self,
        version: int,
        route: str,
        method: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        user: str | None,
    ) -> Reply:
        params: dict[str, Any] = dict(query)
        if body and "application/x-www-form-urlencoded" in headers.get("content-type", ""):
            for key, values in parse_qs(body.decode(), keep_blank_values=True).items():
                params[key] = values if key.endswith("[]") else values[-1]
        fmt = params.get("format") or (
            "json" if "application/json" in headers.get("accept", "") else "xml"
        )
        if user is None:
            return ocs_reply(version, fmt, 997, "Current user is not logged in", [])
        if headers.get("ocs-apirequest") != "true":
            return Reply(
                412,
                {"Content-Type": "application/json; charset=utf-8"},
                json.dumps({"message": "CSRF check failed"}).encode(),
            )
        segments = [unquote(s) for s in route.strip("/").split("/")]
        try:
            data = self._ocs_route(method, segments, params, user)
        except OcsError as error:
            return ocs_reply(version, fmt, error.code, error.message, [])
        return ocs_reply(version, fmt, 200, "", data)

    def _ocs_route(self, method: str, seg: list[str], params: dict[str, Any], user: str) -> Any:
        if seg[:2] == ["cloud", "users"]:
            return self._users(method, seg[2:], params, user)
        if seg[:2] == ["cloud", "groups"]:
            self._require_admin(user)
            return self._groups(method, seg[2:], params)
        if seg[:5] == ["apps", "files_sharing", "api", "v1", "shares"]:
            return self._shares(method, seg[5:], params, user)
        if seg[:3] == ["apps", "groupfolders", "folders"]:
            self._require_admin(user)
            return self._group_folders(method, seg[3:], params)
        raise OcsError(998, "Invalid query, please check the syntax.")

    def _is_admin(self, user: str) -> bool:
        return user in self.groups["admin"]

    def _require_admin(self, user: str) -> None:
        if not self._is_admin(user):
            raise OcsError(403, "Logged in user must be an admin")

    def _users(self, method: str, seg: list[str], params: dict[str, Any], user: str) -> Any:
        # getUser and deleteUser are #[NoAdminRequired]: they look at the rights themselves.
        if len(seg) == 1 and method == "GET":
            return self._get_user(seg[0], user)
        if len(seg) == 1 and method == "DELETE":
            return self._delete_user(seg[0], user)
        self._require_admin(user)
        if not seg and method == "GET":
            return {"users": page(self._search(self.accounts, params), params)}
        if not seg and method == "POST":
            return self._add_user(params)
        target, rest = seg[0], seg[1:]
        account = self.accounts.get(target)
        if account is None:
            # The documented codes: 103 for a membership change, 101 otherwise.
            membership = rest == ["groups"] and method != "GET"
            raise OcsError(103 if membership else 101, "User does not exist")
        if method == "PUT" and not rest:
            return self._edit_user(account, params)
        if method == "PUT" and rest in (["enable"], ["disable"]):
            account.enabled = rest == ["enable"]
            return []
        if rest == ["groups"] and method == "GET":
            return {"groups": sorted(g for g, m in self.groups.items() if target in m)}
        if rest == ["groups"] and method in ("POST", "DELETE"):
            group_id = params.get("groupid", "")
            if not group_id:
                raise OcsError(101, "No group specified")
            if group_id not in self.groups:
                raise OcsError(102, "Group does not exist")
            if method == "POST":
                self.groups[group_id].add(target)
            else:
                self.groups[group_id].discard(target)
            return []
        raise OcsError(998, "Invalid query, please check the syntax.")

    def _get_user(self, target: str, user: str) -> Any:
        """GET cloud/users/<id>: provisioning_api UsersController::getUser (nextcloud/server,
        read at 0c279a65) over AUserDataOCSController::getUserData. An id Nextcloud does
        not have is OCSNotFoundException("User does not exist"), OCS 404, before any right
        is looked at; an account the caller may not see is RESPOND_NOT_FOUND, 998. The
        double has no subadmins or delegated admins: an admin sees all, others themselves.
        """
        account = self.accounts.get(target)
        if account is None:
            raise OcsError(404, "User does not exist")
        if target != user and not self._is_admin(user):
            raise OcsError(998, "")
        return self._user_data(target, account)

    def _delete_user(self, target: str, user: str) -> Any:
        """DELETE cloud/users/<id>: provisioning_api UsersController::deleteUser (nextcloud/
        server, read at 0c279a65), its refusals in its order, each an OCSException('', code)
        with an empty message (nextcloud/server#28894 shows the 998 answer on v1):

        - no account of that id: RESPOND_NOT_FOUND, 998;
        - the caller's own account: 101;
        - a caller that is no admin, no delegated admin (nor one deleting a member of
          "admin"), and no subadmin the account is accessible to (SubAdmin::isUserAccessible
          is false for an admin): RESPOND_NOT_FOUND, 998 again. The double has no subadmins
          or delegated admins, so: any caller outside "admin";
        - User::delete() failing (a user backend that cannot delete): 101, not modelled.

        ocs_reply maps the code: v1 answers HTTP 200 (401 for 997 only), v2 HTTP 404 for
        998 and 400 for 101 (lib/private/AppFramework/OCS/V1Response.php and V2Response.php
        getStatus, through lib/private/AppFramework/Middleware/OCSMiddleware.php
        afterException). Not modelled: #[PasswordConfirmationRequired].
        """
        if target not in self.accounts:
            raise OcsError(998, "")
        if target == user:
            raise OcsError(101, "")
        if not self._is_admin(user):
            raise OcsError(998, "")
        del self.accounts[target]
        for members in self.groups.values():
            members.discard(target)
        return []

    def _add_user(self, params: dict[str, Any]) -> Any:
        user_id = params.get("userid", "")
        password = params.get("password", "")
        if not user_id or "/" in user_id:
            raise OcsError(101, "Invalid user id")
        if user_id in self.accounts:
            raise OcsError(102, "User already exists")
        groups = params.get("groups[]", [])
        for group in groups:
            if group not in self.groups:
                raise OcsError(104, f"Group {group} does not exist")
        if not password and not params.get("email"):
            raise OcsError(108, "To send a password link to the user an email address is required.")
        _password_policy(password)
        self.accounts[user_id] = Account(
            password, params.get("displayName") or user_id, params.get("email") or None
        )
        for group in groups:
            self.groups[group].add(user_id)
        self._home(user_id)
        return {"id": user_id}

    def _edit_user(self, account: Account, params: dict[str, Any]) -> Any:
        key, value = params.get("key"), params.get("value", "")
        if key in ("displayname", "display"):
            account.display_name = value
        elif key == "email":
            account.email = value or None
        elif key == "password":
            _password_policy(value)
            account.password = value
        else:
            raise OcsError(102, "Invalid input data")
        return []

    def _user_data(self, user_id: str, account: Account) -> dict[str, Any]:
        return {
            "enabled": account.enabled,
            "id": user_id,
            "displayname": account.display_name,
            "display-name": account.display_name,
            "email": account.email,
            "groups": sorted(g for g, m in self.groups.items() if user_id in m),
            # UsersController::fillStorageInfo: `used` is the size of the user's files.
            "quota": {"quota": "none", "used": self.storage_used(user_id)},
        }

    def _groups(self, method: str, seg: list[str], params: dict[str, Any]) -> Any:
        if not seg and method == "GET":
            return {"groups": page(self._search(self.groups, params), params)}
        if not seg and method == "POST":
            group_id = params.get("groupid", "")
            if not group_id:
                raise OcsError(101, "Invalid group name")
            if group_id in self.groups:
                raise OcsError(102, "group exists")
            self.groups[group_id] = set()
            return []
        group_id = "/".join(seg)
        if method == "GET":
            if group_id not in self.groups:
                raise OcsError(404, "The requested group could not be found")
            return {"users": sorted(self.groups[group_id])}
        if method == "DELETE":
            if group_id not in self.groups:
                raise OcsError(101, "Group does not exist")
            if group_id == "admin":
                raise OcsError(102, "Cannot delete admin group")
            del self.groups[group_id]
            return []
        raise OcsError(998, "Invalid query, please check the syntax.")

    @staticmethod
    def _search(names: dict[str, Any], params: dict[str, Any]) -> list[str]:
        search = str(params.get("search") or "").lower()
        return sorted(name for name in names if search in name.lower())

    def _shares(self, method: str, seg: list[str], params: dict[str, Any], user: str) -> Any:
        if not seg and method == "GET":
            # Shares the user made; with reshares=true (and no path), also those others
            # made of the user's files (the share manager's getSharesBy with $reshares).
            reshares = params.get("reshares") == "true" and not params.get("path")
            mine = [
                s
                for s in self.shares.values()
                if s.sharer == user or (reshares and s.owner == user)
            ]
            if params.get("path"):
                path = clean(params["path"])
                if path not in self._home(user):
                    raise OcsError(404, "Wrong path, file/folder doesn't exist")
                mine = [s for s in mine if s.path == path]
            return [self._share_data(s) for s in mine]
        if not seg and method == "POST":
            return self._share_data(self._create_share(params, user))
        share = self.shares.get(int(seg[0])) if seg[0].isdigit() else None
        if share is None or user not in (share.owner, share.sharer):
            raise OcsError(404, "Wrong share ID, share doesn't exist")
        if method == "GET":
            return [self._share_data(share)]
        if method == "DELETE":
            del self.shares[share.id]
            return []
        raise OcsError(998, "Invalid query, please check the syntax.")

    def _create_share(self, params: dict[str, Any], user: str) -> ShareRecord:
        if not params.get("path"):
            raise OcsError(404, "Please specify a file or folder path")
        path = clean(params["path"])
        node = self._home(user).get(path)
        if node is None:
            raise OcsError(404, "Wrong path, file/folder doesn't exist")
        share_type = int(params.get("shareType", -1))
        permissions = int(params.get("permissions", PERMISSION_ALL))
        if permissions < 0 or permissions > PERMISSION_ALL:
            raise OcsError(404, "invalid permissions")
        permissions |= PERMISSION_READ
        if not node.is_dir:
            permissions &= ~(PERMISSION_DELETE | PERMISSION_CREATE)
        share_with = params.get("shareWith")
        token = password_hash = None
        if share_type == SHARE_USER:
            if share_with is None or share_with not in self.accounts:
                raise OcsError(404, "Please specify a valid user")
        elif share_type == SHARE_GROUP:
            if share_with is None or share_with not in self.groups:
                raise OcsError(404, "Please specify a valid group")
        elif share_type == SHARE_LINK:
            upload = params.get("publicUpload") == "true"
            if upload and not node.is_dir:
                raise OcsError(404, "Public upload is only possible for publicly shared folders")
            permissions = PERMISSION_ALL & ~16 if upload else PERMISSION_READ
            share_with, token = None, secrets.token_urlsafe(11)
            if params.get("password"):
                password_hash = link_password_hash(params["password"])
        else:
            raise OcsError(400, "Unknown share type")
        share = ShareRecord(
            next(self._ids), share_type, user, path, node.file_id, node.is_dir,
            permissions, share_with, token, int(time.time()), password_hash,
        )  # fmt: skip
        self.shares[share.id] = share
        return share

    def _share_data(self, share: ShareRecord) -> dict[str, Any]:
        owner = self.accounts.get(share.owner)
        data: dict[str, Any] = {
            "id": str(share.id),
            "share_type": share.share_type,
            "uid_owner": share.sharer,
            "displayname_owner": owner.display_name if owner else share.owner,
            "permissions": share.permissions,
            "stime": share.stime,
            "parent": None,
            "expiration": None,
            "token": share.token,
            "uid_file_owner": share.owner,
            "path": "/" + share.path,
            "item_type": "folder" if share.is_dir else "file",
            "item_source": share.file_id,
            "file_source": share.file_id,
            "file_target": "/" + share.path.rsplit("/", 1)[-1],
            "share_with": share.share_with,
            "share_with_displayname": share.share_with,
            "mail_send": 0,
        }
        if share.share_type == SHARE_LINK:
            # formatShare: a link share's share_with is its (hashed) password.
            data["share_with"] = data["password"] = share.password_hash
            data["share_with_displayname"] = "(Shared link)"
            data["url"] = f"{self.url}/index.php/s/{share.token}"
        return data

    def _group_folders(self, method: str, seg: list[str], params: dict[str, Any]) -> Any:
        if not seg and method == "GET":
            return {str(f.id): self._folder_data(f) for f in self.group_folders.values()}
        if not seg and method == "POST":
            mount_point = str(params.get("mountpoint", "")).strip()
            if any(f.mount_point == mount_point for f in self.group_folders.values()):
                raise OcsError(400, "Mount point already exists")
            folder = GroupFolderRecord(next(self._ids), mount_point)
            self.group_folders[folder.id] = folder
            return self._folder_data(folder)
        folder_or_none = self.group_folders.get(int(seg[0])) if seg[0].isdigit() else None
        if folder_or_none is None:
            raise OcsError(404, "Groupfolder not found")
        folder, rest = folder_or_none, seg[1:]
        if method == "GET" and not rest:
            return self._folder_data(folder)
        if method == "DELETE" and not rest:
            del self.group_folders[folder.id]
            return {"success": True}
        if method == "POST" and rest == ["groups"]:
            folder.groups.setdefault(str(params.get("group", "")), PERMISSION_ALL)
        elif method == "POST" and rest[:1] == ["groups"] and len(rest) > 1:
            folder.groups["/".join(rest[1:])] = int(params.get("permissions", 0))
        elif method == "DELETE" and rest[:1] == ["groups"] and len(rest) > 1:
            folder.groups.pop("/".join(rest[1:]), None)
        elif method == "POST" and rest == ["quota"]:
            folder.quota = int(params.get("quota", -3))
        else:
            raise OcsError(998, "Invalid query, please check the syntax.")
        return {"success": True, "folder": self._folder_data(folder)}

    def _folder_data(self, folder: GroupFolderRecord) -> dict[str, Any]:
        return {
            "id": folder.id,
            "mount_point": folder.mount_point,
            "quota": folder.quota,
            "acl": folder.acl,
            "size": 0,
            "groups": dict(folder.groups),
            "group_details": {
                gid: {"displayName": gid, "permissions": p, "type": "group"}
                for gid, p in folder.groups.items()
            },
            "manage": [],
        }
