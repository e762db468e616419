"""Creating, changing and deleting users. Nothing commits."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy import update as sa_update
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.errors import ApiError, conflict, not_found
from inventiv_api.identity.passwords import hash_password
from inventiv_api.users.schemas import UserCreate, UserUpdate
from inventiv_common.db.models import OrganizationMembership, User, UserSession


async def get(*, session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise not_found("user")
    return user


async def _ensure_unique(
    session: AsyncSession, *, username: str | None, email: str | None, except_id: uuid.UUID | None
) -> None:
    for column, value, code in (
        (User.username, username, "username_taken"),
        (User.email, email, "email_taken"),
    ):
        if value is None:
            continue
        query = select(User.id).where(func.lower(column) == value.lower())
        if except_id is not None:
            query = query.where(User.id != except_id)
        if await session.scalar(query) is not None:
            raise conflict(code, f"{column.key} already in use")


async def create(*, session: AsyncSession, body: UserCreate) -> User:
    await _ensure_unique(session, username=body.username, email=body.email, except_id=None)
    user = User(
        username=body.username,
        email=body.email,
        password_hash=hash_password(body.password),
        first_name=body.first_name,
        last_name=body.last_name,
        role=body.role,
    )
    session.add(user)
    await session.flush()
    return user


async def _other_active_admins(session: AsyncSession, user_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count()).where(User.role == "admin", User.is_active, User.id != user_id)
    )
    return int(count or 0)


async def update(*, session: AsyncSession, user: User, body: UserUpdate) -> list[str]:
    changes = body.model_dump(exclude_unset=True)
    for field in ("email", "role", "is_active"):
        if field in changes and changes[field] is None:
            raise ApiError(422, "validation_error", f"{field} cannot be empty")
    await _ensure_unique(session, username=None, email=body.email, except_id=user.id)
    losing_admin = user.role == "admin" and (
        changes.get("role") == "user" or changes.get("is_active") is False
    )
    if losing_admin and await _other_active_admins(session, user.id) == 0:
        raise conflict("last_platform_admin", "the last active platform admin must stay one")
    password = changes.pop("password", None)
    if password is not None:
        user.password_hash = hash_password(password)
    for field, value in changes.items():
        setattr(user, field, value)
    if password is not None or changes.get("is_active") is False:
        # A reset password or a disabled account ends every open session at once.
        await session.execute(
            sa_update(UserSession)
            .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
            .values(revoked_at=func.now())
        )
    await session.flush()
    return sorted([*changes, *(["password"] if password is not None else [])])


async def delete(*, session: AsyncSession, user: User) -> None:
    if user.role == "admin" and await _other_active_admins(session, user.id) == 0:
        raise conflict("last_platform_admin", "the last active platform admin cannot be deleted")
    await _refuse_if_last_owner(session, user.id)
    await session.delete(user)
    await session.flush()


async def _refuse_if_last_owner(session: AsyncSession, user_id: uuid.UUID) -> None:
    owned = await session.scalars(
        select(OrganizationMembership.organization_id).where(
            OrganizationMembership.user_id == user_id, OrganizationMembership.role == "owner"
        )
    )
    for org_id in owned:
        owners = await session.scalar(
            select(func.count()).where(
                OrganizationMembership.organization_id == org_id,
                OrganizationMembership.role == "owner",
            )
        )
        if (owners or 0) <= 1:
            raise conflict(
                "last_owner", "the user is the last owner of an organization; transfer it first"
            )
