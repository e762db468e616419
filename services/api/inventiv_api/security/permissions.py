"""The one permission map: what each organization role, and the platform admin, may do.

Every route declares exactly one Permission through `require()`; a test walks the
route table and fails on any route without one.
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    # No authentication at all (health, version, docs, login).
    public = "public"
    # Any authenticated caller, in any workspace (own profile, sessions, org list).
    authenticated = "authenticated"
    # Platform administration.
    users_manage = "users:manage"
    catalog_manage = "catalog:manage"
    platform_read = "platform:read"  # the api process's own status
    # Organization scope (a current organization is required).
    org_read = "org:read"
    members_read = "members:read"
    members_manage = "members:manage"
    invitations_read = "invitations:read"
    invitations_create = "invitations:create"
    instances_read = "instances:read"
    instances_manage = "instances:manage"
    models_read = "models:read"
    models_manage = "models:manage"
    activation_technical = "activation:technical"
    activation_economic = "activation:economic"
    api_keys_use = "api_keys:use"  # create, list and revoke one's own keys
    api_keys_manage = "api_keys:manage"  # every key of the organization
    provider_settings_read = "provider_settings:read"
    provider_settings_manage = "provider_settings:manage"
    action_logs_read = "action_logs:read"
    audit_read = "audit:read"
    finops_read = "finops:read"
    finops_manage = "finops:manage"  # the organization's budget


class Role(StrEnum):
    owner = "owner"
    admin = "admin"
    manager = "manager"
    user = "user"


ROLE_RANK = {Role.user: 1, Role.manager: 2, Role.admin: 3, Role.owner: 4}

P = Permission
_USER = {
    P.org_read,
    P.members_read,
    P.instances_read,
    P.models_read,
    P.api_keys_use,
    P.action_logs_read,
}
_MANAGER = _USER | {
    P.invitations_read,
    P.invitations_create,
    P.activation_economic,
    P.provider_settings_read,
    P.audit_read,
    P.finops_read,
}
_ADMIN = (_MANAGER - {P.activation_economic}) | {
    P.members_manage,
    P.instances_manage,
    P.models_manage,
    P.activation_technical,
    P.api_keys_manage,
    P.provider_settings_manage,
    P.finops_manage,
}
_OWNER = _ADMIN | _MANAGER

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.user: frozenset(_USER),
    Role.manager: frozenset(_MANAGER),
    Role.admin: frozenset(_ADMIN),
    Role.owner: frozenset(_OWNER),
}
PLATFORM_ADMIN_PERMISSIONS = frozenset({P.users_manage, P.catalog_manage, P.platform_read})
# Permissions that make sense only inside an organization workspace.
ORGANIZATION_PERMISSIONS = frozenset(
    set(Permission) - {P.public, P.authenticated} - PLATFORM_ADMIN_PERMISSIONS
)


def role_allows(role: Role | None, permission: Permission) -> bool:
    return role is not None and permission in ROLE_PERMISSIONS[role]


def outranks_or_equals(actor: Role, target: Role) -> bool:
    return ROLE_RANK[actor] >= ROLE_RANK[target]
