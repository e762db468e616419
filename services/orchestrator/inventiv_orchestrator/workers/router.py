"""/internal/worker/register and /internal/worker/heartbeat (reached through the api)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from inventiv_common.instance_secrets import secret_hash
from inventiv_common.web import public_route, resources_of
from inventiv_orchestrator.workers import service

# Workers authenticate with their own secrets, checked here, not with user sessions.
router = APIRouter(
    prefix="/internal/worker", tags=["workers"], dependencies=[Depends(public_route)]
)
MAX_HEARTBEAT_BYTES = 256 * 1024


def _bearer(request: Request) -> str:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise service.WorkerAuthError(401, "Authorization: Bearer <secret> required")
    return credential.strip()


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_HEARTBEAT_BYTES:
        raise service.WorkerAuthError(413, "body too large")
    try:
        body = json.loads(raw)
    except ValueError:
        raise service.WorkerAuthError(400, "body must be JSON") from None
    if not isinstance(body, dict):
        raise service.WorkerAuthError(400, "body must be a JSON object")
    return body


def _error(exc: service.WorkerAuthError) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": "worker_auth", "message": str(exc)}}, status_code=exc.status
    )


@router.post("/register")
async def register(request: Request) -> JSONResponse:
    ctx = request.app.state.ctx
    try:
        secret, body = _bearer(request), await _json_body(request)
    except service.WorkerAuthError as exc:
        return _error(exc)
    async with resources_of(request).session_factory() as session:
        try:
            instance_id, token = await service.register(
                session=session, settings=ctx.settings, bootstrap_secret=secret, body=body
            )
        except service.WorkerAuthError as exc:
            if exc.keep_changes:
                await session.commit()
            return _error(exc)
        await session.commit()
    ctx.tokens.drop_instance(instance_id)  # the tokens registration just revoked
    # The worker's first heartbeat follows at once: it needs no lookup.
    ctx.tokens.put(secret_hash(token), instance_id)
    # A registered worker moves its instance on (installing -> starting) without waiting.
    if loop := request.app.state.loops.get("health"):
        loop.wake()
    return JSONResponse(
        {"token": token, "heartbeat_interval_s": ctx.settings.worker_heartbeat_interval_s}
    )


@router.post("/heartbeat")
async def heartbeat(request: Request) -> JSONResponse:
    try:
        token, body = _bearer(request), await _json_body(request)
        async with resources_of(request).session_factory() as session:
            instance_id = await service.instance_for_token(
                session=session, cache=request.app.state.ctx.tokens, token=token
            )
    except service.WorkerAuthError as exc:
        return _error(exc)
    request.app.state.heartbeats.add(instance_id, body)
    return JSONResponse({"ok": True})
