"""/users: platform administration of accounts (platform admins only)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import select

from inventiv_api.audit import service as audit
from inventiv_api.deps import SessionDep
from inventiv_api.errors import conflict
from inventiv_api.security.permissions import Permission as P
from inventiv_api.security.principal import Principal, require
from inventiv_api.types import Offset
from inventiv_api.users import service
from inventiv_api.users.schemas import UserCreate, UserOut, UserUpdate
from inventiv_common.db.models import User

router = APIRouter(prefix="/users", tags=["users"])
Admin = Annotated[Principal, Depends(require(P.users_manage))]


@router.get("", response_model=list[UserOut])
async def list_users(
    _: Admin,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> list[User]:
    rows = await session.scalars(select(User).order_by(User.username).limit(limit).offset(offset))
    return list(rows)


@router.post("", response_model=UserOut, status_code=201)
async def create_user(
    body: UserCreate, principal: Admin, request: Request, session: SessionDep
) -> User:
    user = await service.create(session=session, body=body)
    audit.record(
        session=session,
        request=request,
        action="user.created",
        principal=principal,
        organization_id=None,
        resource_type="user",
        resource_id=user.id,
        details={"role": user.role},
    )
    await session.commit()
    return user


@router.get("/{user_id}", response_model=UserOut)
async def get_user(user_id: uuid.UUID, _: Admin, session: SessionDep) -> User:
    return await service.get(session=session, user_id=user_id)


@router.put("/{user_id}", response_model=UserOut)
async def update_user(
    user_id: uuid.UUID, body: UserUpdate, principal: Admin, request: Request, session: SessionDep
) -> User:
    user = await service.get(session=session, user_id=user_id)
    changed = await service.update(session=session, user=user, body=body)
    audit.record(
        session=session,
        request=request,
        action="user.updated",
        principal=principal,
        resource_type="user",
        resource_id=user.id,
        details={"fields": changed},
    )
    await session.commit()
    return user


@router.delete("/{user_id}", status_code=204)
async def delete_user(
    user_id: uuid.UUID, principal: Admin, request: Request, session: SessionDep
) -> Response:
    if user_id == principal.user_id:
        raise conflict("cannot_delete_self", "you cannot delete your own account")
    user = await service.get(session=session, user_id=user_id)
    await service.delete(session=session, user=user)
    audit.record(
        session=session,
        request=request,
        action="user.deleted",
        principal=principal,
        resource_type="user",
        resource_id=user_id,
        details={"username": user.username},
    )
    await session.commit()
    return Response(status_code=204)
