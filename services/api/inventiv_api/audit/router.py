"""/audit_logs: the organization's audit trail (owner, admin, manager), and
/audit_logs/platform: the changes that belong to no organization (the catalog, users),
for platform administrators."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from inventiv_api.audit import service
from inventiv_api.audit.schemas import AuditEntryOut, AuditPage
from inventiv_api.deps import SessionDep
from inventiv_api.errors import ApiError
from inventiv_api.security.permissions import Permission as P
from inventiv_api.security.principal import Principal, require
from inventiv_api.security.workspace import current_org_id
from inventiv_api.types import Moment, Offset

router = APIRouter(prefix="/audit_logs", tags=["audit"])
Auditor = Annotated[Principal, Depends(require(P.audit_read))]
PlatformAdmin = Annotated[Principal, Depends(require(P.platform_read))]


class Filters:
    """The query parameters both trails take."""

    def __init__(
        self,
        action: Annotated[str | None, Query(max_length=64)] = None,
        actor_user_id: uuid.UUID | None = None,
        resource_type: Annotated[str | None, Query(max_length=64)] = None,
        since: Moment | None = None,
        until: Moment | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Offset = 0,
    ) -> None:
        if since and until and since >= until:
            raise ApiError(400, "bad_range", "since must be before until")
        self.action, self.actor_user_id, self.resource_type = action, actor_user_id, resource_type
        self.since, self.until, self.limit, self.offset = since, until, limit, offset


FiltersDep = Annotated[Filters, Depends()]


async def _page(session: SessionDep, organization_id: uuid.UUID | None, f: Filters) -> AuditPage:
    rows, total = await service.search(
        session=session,
        organization_id=organization_id,
        action=f.action,
        actor_user_id=f.actor_user_id,
        resource_type=f.resource_type,
        since=f.since,
        until=f.until,
        limit=f.limit,
        offset=f.offset,
    )
    return AuditPage(
        items=[AuditEntryOut.model_validate(r) for r in rows],
        total=total,
        limit=f.limit,
        offset=f.offset,
    )


@router.get("", response_model=AuditPage)
async def list_audit_logs(
    principal: Auditor, session: SessionDep, filters: FiltersDep
) -> AuditPage:
    return await _page(session, current_org_id(principal), filters)


@router.get("/platform", response_model=AuditPage)
async def list_platform_audit_logs(
    _principal: PlatformAdmin, session: SessionDep, filters: FiltersDep
) -> AuditPage:
    return await _page(session, None, filters)
