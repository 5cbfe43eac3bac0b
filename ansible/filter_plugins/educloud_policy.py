# Managed in the educloud repository.
"""Filters backed by the educloud package, the one place these are computed:

{{ educloud_retention | educloud_role_variables(educloud_hosting_policy) }}
    the role variables the policies decide (educloud.policy.role_variables);
{{ educloud_policy_files | educloud_policy_fingerprint }}
    each policy file to its SHA-256 (educloud.policy.fingerprint).
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError


def educloud_role_variables(retention: Any, hosting: Any) -> dict[str, Any]:
    from educloud.errors import EducloudError
    from educloud.policy import role_variables

    try:
        return role_variables(retention, hosting)
    except (EducloudError, KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"educloud_role_variables: {exc}") from exc


def educloud_policy_fingerprint(directory: Any) -> dict[str, str]:
    """Each policy file of the directory to its SHA-256 (educloud.policy.fingerprint)."""
    from pathlib import Path

    from educloud.policy import fingerprint

    path = Path(str(directory))
    if not path.is_dir():
        raise AnsibleFilterError(f"educloud_policy_fingerprint: {path} is not a directory")
    return fingerprint(path)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "educloud_role_variables": educloud_role_variables,
            "educloud_policy_fingerprint": educloud_policy_fingerprint,
        }
