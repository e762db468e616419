"""/admin/status: the api process's background loops, bus consumer and live feed, as the
orchestrator's and finops' /admin/status show theirs. The api's port is public, so
this one needs a platform administrator."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from inventiv_api.security.permissions import Permission as P
from inventiv_api.security.principal import Principal, require
from inventiv_common.status import process_status
from inventiv_common.web import resources_of

router = APIRouter(tags=["service"])
PlatformAdmin = Annotated[Principal, Depends(require(P.platform_read))]


@router.get("/admin/status", summary="What this api process is doing")
async def admin_status(_principal: PlatformAdmin, request: Request) -> dict[str, Any]:
    state = request.app.state
    return await process_status(
        "inventiv-api",
        resources_of(request),
        state.consumer,
        state.loops,
        instance_feed=state.instance_feed.status(),
    )
