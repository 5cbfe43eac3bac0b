# Managed in the educloud repository.
"""educloud_role_variables: the role variables the policies decide, computed by the
educloud package (educloud.policy.role_variables), the one place they are computed.

    {{ educloud_retention | educloud_role_variables(educloud_hosting_policy) }}
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


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"educloud_role_variables": educloud_role_variables}
