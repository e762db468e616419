"""Authentication and sessions. No HTTP here; nothing commits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.auth.schemas import MeOut
from inventiv_api.identity.passwords import hash_password, verify_password
from inventiv_api.security.principal import Principal
from inventiv_common.db.models import Organization, OrganizationMembership, User, UserSession


# Verified against when the account does not exist, so a wrong username costs the
# same time as a wrong password and timing reveals nothing.
@lru_cache
def _dummy_hash() -> str:
    return hash_password("inventiv-timing-equalizer")


async def authenticate(*, session: AsyncSession, identifier: str, password: str) -> User | None:
    user = await session.scalar(
        select(User).where(
            (func.lower(User.username) == identifier.lower())
            | (func.lower(User.email) == identifier.lower())
        )
    )
    if user is None:
        verify_password(password, _dummy_hash())
        return None
    if not verify_password(password, user.password_hash) or not user.is_active:
        return None
    return user


async def default_organization(*, session: AsyncSession, user_id: uuid.UUID) -> uuid.UUID | None:
    """The workspace a new session opens in: the user's oldest membership, if any."""
    org_id: uuid.UUID | None = await session.scalar(
        select(OrganizationMembership.organization_id)
        .where(OrganizationMembership.user_id == user_id)
        .order_by(OrganizationMembership.created_at, OrganizationMembership.organization_id)
        .limit(1)
    )
    return org_id


async def open_session(
    *,
    session: AsyncSession,
    user: User,
    ip_address: str | None,
    user_agent: str | None,
    ttl_seconds: int,
) -> UserSession:
    now = datetime.now(UTC)
    user_session = UserSession(
        user_id=user.id,
        current_organization_id=await default_organization(session=session, user_id=user.id),
        ip_address=ip_address,
        user_agent=(user_agent or "")[:500] or None,
        created_at=now,
        last_used_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    session.add(user_session)
    user.last_login_at = now
    await session.flush()
    return user_session


async def revoke_sessions(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    only: uuid.UUID | None = None,
    keep: uuid.UUID | None = None,
) -> int:
    """Revoke one session (`only`), or all but `keep`. Returns how many were revoked."""
    query = update(UserSession).where(
        UserSession.user_id == user_id, UserSession.revoked_at.is_(None)
    )
    if only is not None:
        query = query.where(UserSession.id == only)
    if keep is not None:
        query = query.where(UserSession.id != keep)
    result = await session.execute(query.values(revoked_at=datetime.now(UTC)))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def list_sessions(*, session: AsyncSession, user_id: uuid.UUID) -> list[UserSession]:
    rows = await session.scalars(
        select(UserSession)
        .where(
            UserSession.user_id == user_id,
            UserSession.revoked_at.is_(None),
            UserSession.expires_at > datetime.now(UTC),
        )
        .order_by(UserSession.created_at.desc())
    )
    return list(rows)


async def describe(*, session: AsyncSession, principal: Principal) -> MeOut:
    user = await session.get_one(User, principal.user_id)
    organization = (
        await session.get(Organization, principal.organization_id)
        if principal.organization_id
        else None
    )
    return MeOut(
        id=user.id,
        username=user.username,
        email=user.email,
        first_name=user.first_name,
        last_name=user.last_name,
        role=user.role,
        is_platform_admin=user.role == "admin",
        session_id=principal.session_id,
        current_organization_id=organization.id if organization else None,
        current_organization_role=principal.role.value if principal.role else None,
        current_organization_name=organization.name if organization else None,
        current_organization_slug=organization.slug if organization else None,
    )


async def email_taken(
    *, session: AsyncSession, email: str, except_user: uuid.UUID | None = None
) -> bool:
    query = select(User.id).where(func.lower(User.email) == email.lower())
    if except_user is not None:
        query = query.where(User.id != except_user)
    return (await session.scalar(query)) is not None


async def change_password(*, session: AsyncSession, user: User, new_password: str) -> None:
    user.password_hash = hash_password(new_password)
    await session.flush()
