"""/audit_logs: the organization's audit trail (owner, admin, manager)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict

from inventiv_api.audit import service
from inventiv_api.deps import SessionDep
from inventiv_api.errors import ApiError
from inventiv_api.security.permissions import Permission as P
from inventiv_api.security.principal import Principal, require
from inventiv_api.security.workspace import current_org_id

router = APIRouter(prefix="/audit_logs", tags=["audit"])
Auditor = Annotated[Principal, Depends(require(P.audit_read))]


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: datetime
    organization_id: uuid.UUID | None
    actor_user_id: uuid.UUID | None
    actor_api_key_id: uuid.UUID | None
    action: str
    outcome: str
    resource_type: str | None
    resource_id: str | None
    ip_address: str | None
    user_agent: str | None
    details: dict[str, Any] | None


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    total: int
    limit: int
    offset: int


@router.get("", response_model=AuditPage)
async def list_audit_logs(
    principal: Auditor,
    session: SessionDep,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor_user_id: uuid.UUID | None = None,
    resource_type: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> AuditPage:
    if since and until and since >= until:
        raise ApiError(400, "bad_range", "since must be before until")
    rows, total = await service.search(
        session=session,
        organization_id=current_org_id(principal),
        action=action,
        actor_user_id=actor_user_id,
        resource_type=resource_type,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    return AuditPage(
        items=[AuditEntryOut.model_validate(r) for r in rows],
        total=total,
        limit=limit,
        offset=offset,
    )
