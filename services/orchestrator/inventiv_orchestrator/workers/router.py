"""/internal/worker/register and /internal/worker/heartbeat (reached through the api).

Answered in plain ASGI, inside the request metrics but ahead of FastAPI's routing,
dependencies and exception layers: a fleet of 2,000 workers sends 400 heartbeats a
second, and that machinery cost more CPU than the heartbeat itself (0.5 ms a request).
Workers authenticate with their own secrets, checked here, not with user sessions.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Receive, Scope, Send

from inventiv_common.instance_secrets import secret_hash
from inventiv_orchestrator.workers import service

MAX_BODY_BYTES = 256 * 1024
JSON_HEADER = (b"content-type", b"application/json")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    """What the request metrics label a request with (they read `scope["route"].path`)."""

    path: str


Handler = Callable[[Any, str, dict[str, Any]], Awaitable[dict[str, Any]]]


async def register(app: Any, secret: str, body: dict[str, Any]) -> dict[str, Any]:
    ctx = app.state.ctx
    # A fleet coming up registers by the hundred; each registration holds a pooled
    # connection while it waits its turns on the event loop, so without a bound they
    # take the whole pool and the loops that provision and promote instances wait.
    async with _registration_slots(app), app.state.resources.session_factory() as session:
        try:
            registration = await service.register(
                session=session, settings=ctx.settings, bootstrap_secret=secret, body=body
            )
        except service.WorkerAuthError as exc:
            if exc.keep_changes:
                await session.commit()
            raise
        await session.commit()
    instance_id = registration.instance_id
    if registration.revoked_tokens:
        ctx.tokens.revoke(instance_id)  # dropped here, and the other replicas told
    else:
        ctx.tokens.drop_instance(instance_id)  # a first registration: nothing to announce
    # The worker's first heartbeat follows at once: it needs no lookup.
    ctx.tokens.put(secret_hash(registration.token), instance_id)
    if registration.facts is not None:
        # Written by the heartbeat writer at once; it then wakes the health loop, which
        # moves the instance on (installing -> starting).
        app.state.heartbeats.registered(instance_id, registration.facts)
    elif loop := app.state.loops.get("health"):
        loop.wake()
    return {
        "token": registration.token,
        "heartbeat_interval_s": ctx.settings.worker_heartbeat_interval_s,
    }


async def heartbeat(app: Any, token: str, body: dict[str, Any]) -> dict[str, Any]:
    tokens = app.state.ctx.tokens
    # A token seen lately needs no query, nor even a session.
    instance_id = tokens.get(secret_hash(token))
    if instance_id is None:
        async with app.state.resources.session_factory() as session:
            instance_id = await service.instance_for_token(
                session=session, cache=tokens, token=token
            )
    app.state.heartbeats.add(instance_id, body)
    return {"ok": True}


def _registration_slots(app: Any) -> asyncio.Semaphore:
    slots: asyncio.Semaphore | None = getattr(app.state, "registration_slots", None)
    if slots is None:
        pool_size = app.state.ctx.settings.db_pool_size
        slots = app.state.registration_slots = asyncio.Semaphore(max(1, pool_size // 2))
    return slots


HANDLERS: dict[str, tuple[Route, Handler]] = {
    f"/internal/worker/{handler.__name__}": (
        Route(f"/internal/worker/{handler.__name__}"),
        handler,
    )
    for handler in (register, heartbeat)
}


class WorkerEndpoints:
    """Pure ASGI middleware: the worker endpoints are answered here, the rest passes on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = HANDLERS.get(scope["path"]) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        route, handler = found
        scope["route"] = route
        try:
            if scope["method"] != "POST":
                raise service.WorkerAuthError(405, "use POST")
            secret = _bearer(scope)
            body = await _json_body(receive)
            status, answer = 200, await handler(scope["app"], secret, body)
        except service.WorkerAuthError as exc:
            status, answer = exc.status, _error("worker_auth", str(exc))
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            # The worker retries; it must not read our database trouble as its own fault.
            log.warning("worker endpoint: database unavailable: %s", type(exc).__name__)
            status, answer = 503, _error("unavailable", "control plane database unavailable")
        except Exception:
            # A fault of ours: said in JSON like every answer of these routes.
            log.exception("worker endpoint: unexpected failure")
            status, answer = 500, _error("internal_error", "the control plane failed")
        payload = json.dumps(answer).encode()
        headers = [JSON_HEADER, (b"content-length", b"%d" % len(payload))]
        if status == 503:
            headers.append((b"retry-after", b"1"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _bearer(scope: Scope) -> str:
    header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
    scheme, _, credential = header.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise service.WorkerAuthError(401, "Authorization: Bearer <secret> required")
    return credential.strip()


async def _json_body(receive: Receive) -> dict[str, Any]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise service.WorkerAuthError(400, "client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise service.WorkerAuthError(413, "body too large")
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    try:
        body = json.loads(b"".join(chunks))
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
        raise service.WorkerAuthError(400, "body must be JSON") from None
    if not isinstance(body, dict):
        raise service.WorkerAuthError(400, "body must be a JSON object")
    return body


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
