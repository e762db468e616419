"""/action_logs, /action_logs/search, /action_types: what happened to the workspace's
instances, for whoever may read its action log."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from inventiv_api.action_logs import service
from inventiv_api.action_logs.schemas import ActionLogOut, ActionLogPage, ActionTypeOut
from inventiv_api.action_logs.service import Filters
from inventiv_api.deps import SessionDep
from inventiv_api.security.permissions import Permission as P
from inventiv_api.security.principal import Principal, require
from inventiv_api.security.workspace import current_org_id
from inventiv_api.types import Moment, Offset
from inventiv_common.db.models import ActionLog, ActionType

router = APIRouter(tags=["action logs"])
Reader = Annotated[Principal, Depends(require(P.action_logs_read))]
StatusFilter = Annotated[str | None, Query(pattern="^(in_progress|success|failed)$")]
TypeFilter = Annotated[str | None, Query(max_length=64)]


@router.get("/action_logs", response_model=list[ActionLogOut])
async def list_action_logs(
    principal: Reader,
    session: SessionDep,
    instance_id: uuid.UUID | None = None,
    action_type: TypeFilter = None,
    status: StatusFilter = None,
    since: Moment | None = None,
    until: Moment | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ActionLog]:
    return await service.latest(
        session=session,
        org_id=current_org_id(principal),
        filters=Filters(instance_id, action_type, status, since, until),
        limit=limit,
    )


@router.get("/action_logs/search", response_model=ActionLogPage)
async def search_action_logs(
    principal: Reader,
    session: SessionDep,
    instance_id: uuid.UUID | None = None,
    action_type: TypeFilter = None,
    status: StatusFilter = None,
    since: Moment | None = None,
    until: Moment | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> ActionLogPage:
    found = await service.search(
        session=session,
        org_id=current_org_id(principal),
        filters=Filters(instance_id, action_type, status, since, until),
        limit=limit,
        offset=offset,
    )
    return ActionLogPage(
        items=[ActionLogOut.model_validate(r) for r in found.rows],
        total=sum(found.by_status.values()),
        limit=limit,
        offset=offset,
        by_type=found.by_type,
        by_status=found.by_status,
    )


@router.get("/action_types", response_model=list[ActionTypeOut])
async def action_types(_: Reader, session: SessionDep) -> list[ActionType]:
    return await service.action_types(session=session)
