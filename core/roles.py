"""Membership roles and the matrix of what each role may read and write.

Every API view and admin page names its `scope`; the matrix below is the one place that says
which roles read and which write it. The README's role table is checked against it by a test.
"""

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ACCOUNTANT = "accountant", "Accountant"
    PAYROLL_MANAGER = "payroll_manager", "Payroll manager"
    CLERK = "clerk", "Clerk"
    AUDITOR = "auditor", "Auditor"


ALL_ROLES = frozenset(Role.values)
_OWNER = Role.OWNER.value
_ACCOUNTANT = Role.ACCOUNTANT.value
_PAYROLL = Role.PAYROLL_MANAGER.value
_CLERK = Role.CLERK.value
_AUDITOR = Role.AUDITOR.value

# scope -> {"read": roles, "write": roles}. Auditors read and never write.
ROLE_MATRIX: dict[str, dict[str, frozenset[str]]] = {
    "company": {"read": ALL_ROLES, "write": frozenset({_OWNER})},
    "members": {"read": ALL_ROLES, "write": frozenset({_OWNER})},
    "audit": {"read": frozenset({_OWNER, _ACCOUNTANT, _AUDITOR}), "write": frozenset()},
    "accounting": {"read": ALL_ROLES, "write": frozenset({_OWNER, _ACCOUNTANT})},
    "payroll": {
        "read": frozenset({_OWNER, _ACCOUNTANT, _PAYROLL, _AUDITOR}),
        "write": frozenset({_OWNER, _PAYROLL}),
    },
    "invoicing": {"read": ALL_ROLES, "write": frozenset({_OWNER, _ACCOUNTANT, _CLERK})},
    "banking": {"read": ALL_ROLES, "write": frozenset({_OWNER, _ACCOUNTANT, _CLERK})},
    "integrations": {
        "read": frozenset({_OWNER, _ACCOUNTANT, _AUDITOR}),
        "write": frozenset({_OWNER, _ACCOUNTANT}),
    },
}


def roles_for(scope: str, *, write: bool) -> frozenset[str]:
    try:
        entry = ROLE_MATRIX[scope]
    except KeyError:
        raise KeyError(
            f"unknown permission scope {scope!r}; add it to core.roles.ROLE_MATRIX"
        ) from None
    return entry["write" if write else "read"]


def role_can(role: str, scope: str, *, write: bool) -> bool:
    return role in roles_for(scope, write=write)
