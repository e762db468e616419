"""Resolving the caller (session cookie, session bearer token or API key) and enforcing
the permission each route declares."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.deps import SessionDep, SettingsDep
from inventiv_api.errors import ApiError, forbidden
from inventiv_api.security import tokens
from inventiv_api.security.permissions import (
    PLATFORM_ADMIN_PERMISSIONS,
    Permission,
    Role,
    role_allows,
)
from inventiv_api.security.secrets import API_KEY_PREFIX, token_hash
from inventiv_api.settings import ApiSettings
from inventiv_common.db.models import ApiKey, OrganizationMembership, User, UserSession

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Last-used times are refreshed at most this often: a write per request would cost more
# than the precision is worth.
TOUCH_INTERVAL = timedelta(seconds=60)


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    username: str
    email: str
    is_platform_admin: bool
    organization_id: uuid.UUID | None
    role: Role | None
    session_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    via_cookie: bool = False

    def can(self, permission: Permission) -> bool:
        if permission in (Permission.public, Permission.authenticated):
            return True
        if permission in PLATFORM_ADMIN_PERMISSIONS:
            return self.is_platform_admin
        return self.organization_id is not None and role_allows(self.role, permission)


def unauthenticated(message: str = "authentication required") -> ApiError:
    return ApiError(401, "unauthenticated", message, headers={"WWW-Authenticate": "Bearer"})


async def role_in(
    session: AsyncSession, org_id: uuid.UUID | None, user_id: uuid.UUID
) -> Role | None:
    if org_id is None:
        return None
    role = await session.scalar(
        select(OrganizationMembership.role).where(
            OrganizationMembership.organization_id == org_id,
            OrganizationMembership.user_id == user_id,
        )
    )
    return Role(role) if role else None


async def _from_session_token(
    session: AsyncSession, settings: ApiSettings, token: str, via_cookie: bool
) -> Principal | None:
    claims = tokens.verify(settings.secret("jwt_secret"), token)
    if claims is None:
        return None
    now = datetime.now(UTC)
    row = (
        await session.execute(
            select(UserSession, User)
            .join(User, User.id == UserSession.user_id)
            .where(
                UserSession.id == claims.session_id,
                UserSession.user_id == claims.user_id,
                UserSession.revoked_at.is_(None),
                UserSession.expires_at > now,
                User.is_active.is_(True),
            )
        )
    ).one_or_none()
    if row is None:
        return None
    user_session, user = row
    if now - user_session.last_used_at > TOUCH_INTERVAL:
        # Committed at once, before the route does anything: nothing else is pending yet.
        await session.execute(
            update(UserSession).where(UserSession.id == user_session.id).values(last_used_at=now)
        )
        await session.commit()
    role = await role_in(session, user_session.current_organization_id, user.id)
    return Principal(
        user_id=user.id,
        username=user.username,
        email=user.email,
        is_platform_admin=user.role == "admin",
        organization_id=user_session.current_organization_id if role else None,
        role=role,
        session_id=user_session.id,
        via_cookie=via_cookie,
    )


async def _from_api_key(session: AsyncSession, key: str) -> Principal | None:
    now = datetime.now(UTC)
    row = (
        await session.execute(
            select(ApiKey, User)
            .join(User, User.id == ApiKey.created_by_user_id)
            .where(
                ApiKey.key_hash == token_hash(key),
                ApiKey.revoked_at.is_(None),
                (ApiKey.expires_at.is_(None)) | (ApiKey.expires_at > now),
                User.is_active.is_(True),
            )
        )
    ).one_or_none()
    if row is None:
        return None
    api_key, user = row
    # A key acts with its creator's current role: leaving the organization or being
    # demoted takes effect on the key at once.
    role = await role_in(session, api_key.organization_id, user.id)
    if role is None:
        return None
    if api_key.last_used_at is None or now - api_key.last_used_at > TOUCH_INTERVAL:
        await session.execute(
            update(ApiKey).where(ApiKey.id == api_key.id).values(last_used_at=now)
        )
        await session.commit()
    return Principal(
        user_id=user.id,
        username=user.username,
        email=user.email,
        is_platform_admin=False,  # keys never carry platform administration
        organization_id=api_key.organization_id,
        role=role,
        api_key_id=api_key.id,
    )


async def resolve_principal(
    request: Request, session: AsyncSession, settings: ApiSettings
) -> Principal | None:
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise unauthenticated("Authorization must be `Bearer <token>`")
        if credential.startswith(API_KEY_PREFIX):
            principal = await _from_api_key(session, credential)
        else:
            principal = await _from_session_token(session, settings, credential, via_cookie=False)
        if principal is None:
            raise unauthenticated("invalid, expired or revoked credentials")
        return principal
    cookie = request.cookies.get(settings.session_cookie_name)
    if cookie:
        return await _from_session_token(session, settings, cookie, via_cookie=True)
    return None


def request_origin(request: Request) -> str | None:
    origin = request.headers.get("origin")
    if origin and origin != "null":
        return origin.rstrip("/")
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}"
    return None


def origin_allowed(request: Request, settings: ApiSettings) -> bool:
    origin = request_origin(request)
    if origin is None:
        return False
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return origin == own or origin in settings.allowed_origin_set


def check_cross_site(request: Request, principal: Principal, settings: ApiSettings) -> None:
    """Cookie-authenticated writes must come from an allowed origin (API keys are exempt:
    a browser never attaches them by itself)."""
    unsafe = principal.via_cookie and request.method not in SAFE_METHODS
    if unsafe and not origin_allowed(request, settings):
        raise forbidden("cross-site request refused: Origin is missing or not allowed")


PrincipalDependency = Callable[..., Awaitable[Any]]


@lru_cache
def require(permission: Permission) -> PrincipalDependency:
    """The dependency a route declares; it carries `.permission` for the route-table test."""

    async def dependency(
        request: Request, session: SessionDep, settings: SettingsDep
    ) -> Principal | None:
        if permission is Permission.public:
            return None
        principal = await resolve_principal(request, session, settings)
        if principal is None:
            raise unauthenticated()
        check_cross_site(request, principal, settings)
        if not principal.can(permission):
            if permission not in PLATFORM_ADMIN_PERMISSIONS and principal.organization_id is None:
                raise ApiError(
                    403, "organization_required", "select an organization workspace first"
                )
            if permission in PLATFORM_ADMIN_PERMISSIONS and principal.api_key_id is not None:
                # A leaked key must not administer the platform: that takes a session.
                raise forbidden("platform administration needs a signed-in session, not an API key")
            raise forbidden(f"your role does not allow {permission.value}")
        request.state.principal = principal
        return principal

    dependency.permission = permission  # type: ignore[attr-defined]
    return dependency


def declared_permission(dependency_call: object) -> Permission | None:
    """The permission a dependency declares (`require()`, or common's `public_route`)."""
    permission = getattr(dependency_call, "permission", None)
    return Permission(permission) if isinstance(permission, str) else None
