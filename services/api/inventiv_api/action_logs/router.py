"""/action_logs, /action_logs/search, /action_types."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Select, func, select

from inventiv_api.deps import SessionDep
from inventiv_api.errors import ApiError
from inventiv_api.security.permissions import Permission as P
from inventiv_api.security.principal import Principal, require
from inventiv_api.security.workspace import current_org_id
from inventiv_common.db.models import ActionLog, ActionType

router = APIRouter(tags=["action logs"])
Reader = Annotated[Principal, Depends(require(P.action_logs_read))]


class ActionLogOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    action_type: str
    component: str
    status: str
    instance_id: uuid.UUID | None
    user_id: uuid.UUID | None
    correlation_id: str | None
    instance_status_before: str | None
    instance_status_after: str | None
    error_code: str | None
    error_message: str | None
    details: dict[str, Any] | None
    created_at: datetime
    completed_at: datetime | None


class ActionLogPage(BaseModel):
    items: list[ActionLogOut]
    total: int
    limit: int
    offset: int
    by_type: dict[str, int]
    by_status: dict[str, int]


class ActionTypeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    label: str
    category: str
    color: str
    icon: str


def _filtered(
    org_id: uuid.UUID,
    instance_id: uuid.UUID | None,
    action_type: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
) -> Select[ActionLog]:
    if since and until and since >= until:
        raise ApiError(400, "bad_range", "since must be before until")
    query = select(ActionLog).where(ActionLog.organization_id == org_id)
    if instance_id:
        query = query.where(ActionLog.instance_id == instance_id)
    if action_type:
        query = query.where(ActionLog.action_type == action_type)
    if status:
        query = query.where(ActionLog.status == status)
    if since:
        query = query.where(ActionLog.created_at >= since)
    if until:
        query = query.where(ActionLog.created_at < until)
    return query


StatusFilter = Annotated[str | None, Query(pattern="^(in_progress|success|failed)$")]
TypeFilter = Annotated[str | None, Query(max_length=64)]


@router.get("/action_logs", response_model=list[ActionLogOut])
async def list_action_logs(
    principal: Reader,
    session: SessionDep,
    instance_id: uuid.UUID | None = None,
    action_type: TypeFilter = None,
    status: StatusFilter = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ActionLog]:
    query = _filtered(current_org_id(principal), instance_id, action_type, status, since, until)
    rows = await session.scalars(query.order_by(ActionLog.created_at.desc()).limit(limit))
    return list(rows)


@router.get("/action_logs/search", response_model=ActionLogPage)
async def search_action_logs(
    principal: Reader,
    session: SessionDep,
    instance_id: uuid.UUID | None = None,
    action_type: TypeFilter = None,
    status: StatusFilter = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ActionLogPage:
    query = _filtered(current_org_id(principal), instance_id, action_type, status, since, until)
    matching = query.subquery()
    by_type: dict[str, int] = dict(
        (
            await session.execute(
                select(matching.c.action_type, func.count()).group_by(matching.c.action_type)
            )
        )
        .tuples()
        .all()
    )
    by_status: dict[str, int] = dict(
        (await session.execute(select(matching.c.status, func.count()).group_by(matching.c.status)))
        .tuples()
        .all()
    )
    rows = await session.scalars(
        query.order_by(ActionLog.created_at.desc(), ActionLog.id).limit(limit).offset(offset)
    )
    return ActionLogPage(
        items=[ActionLogOut.model_validate(r) for r in rows],
        total=sum(by_status.values()),
        limit=limit,
        offset=offset,
        by_type=by_type,
        by_status=by_status,
    )


@router.get("/action_types", response_model=list[ActionTypeOut])
async def action_types(_: Reader, session: SessionDep) -> list[ActionType]:
    return list(
        await session.scalars(select(ActionType).order_by(ActionType.category, ActionType.code))
    )
