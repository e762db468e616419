"""/internal/worker/*: workers reach the control plane through the api's public address.
Registration and heartbeats pass to the orchestrator unchanged; the agent's package is
served from here (VMs download it before they hold any credential: it is this open
source distribution, and each VM checks its sha256 against its user data)."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse

from inventiv_api.deps import SettingsDep
from inventiv_api.errors import ApiError, not_found
from inventiv_common import agent_package
from inventiv_common.web import public_route

# Authentication is the worker's own secret, checked by the orchestrator.
router = APIRouter(
    prefix="/internal/worker", tags=["workers"], dependencies=[Depends(public_route)]
)
FORWARDED_HEADERS = ("authorization", "content-type", "user-agent")


async def _forward(request: Request, settings: SettingsDep, path: str) -> Response:
    client: httpx.AsyncClient = request.app.state.http
    headers = {h: request.headers[h] for h in FORWARDED_HEADERS if h in request.headers}
    try:
        upstream = await client.post(
            f"{settings.orchestrator_url}/internal/worker/{path}",
            content=await request.body(),
            headers=headers,
            timeout=10.0,
        )
    except httpx.HTTPError:
        raise ApiError(502, "orchestrator_unreachable", "the orchestrator did not answer") from None
    return Response(
        upstream.content,
        status_code=upstream.status_code,
        media_type=upstream.headers.get("content-type", "application/json"),
    )


@router.post("/register")
async def register(request: Request, settings: SettingsDep) -> Response:
    return await _forward(request, settings, "register")


@router.post("/heartbeat")
async def heartbeat(request: Request, settings: SettingsDep) -> Response:
    return await _forward(request, settings, "heartbeat")


@router.get("/agent/{file_name}", response_class=FileResponse)
async def agent_wheel(file_name: str, settings: SettingsDep) -> FileResponse:
    """The worker agent's wheel; only the one file configured, by its own name."""
    package = agent_package.find(settings.agent_package_path)
    if package is None or file_name != package.file_name:
        raise not_found("agent package")
    return FileResponse(package.path, media_type="application/octet-stream")
