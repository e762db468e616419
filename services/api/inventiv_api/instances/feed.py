"""/events/instances: a server-sent events stream of the workspace's instance changes.

Each change the orchestrator commits is published on the bus; this endpoint relays
those of the caller's organization. Pub/sub drops what nobody hears, so the console
refreshes its list on (re)connect and uses the stream for what follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from inventiv_api.security.permissions import Permission as P
from inventiv_api.security.principal import Principal, require
from inventiv_api.security.workspace import current_org_id
from inventiv_common.bus import Envelope
from inventiv_common.messages import EVT_INSTANCE_STATUS_CHANGED, Channel
from inventiv_common.web import resources_of

router = APIRouter(tags=["instances"])
Reader = Annotated[Principal, Depends(require(P.instances_read))]
KEEPALIVE_S = 15.0


@router.get("/events/instances", response_class=StreamingResponse)
async def instance_events(principal: Reader, request: Request) -> StreamingResponse:
    org_id = current_org_id(principal)
    bus = resources_of(request).bus

    async def stream() -> AsyncIterator[bytes]:
        pubsub = bus.redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(bus.channel(Channel.instances))
        try:
            yield b"event: ready\ndata: {}\n\n"
            while not await request.is_disconnected():
                message = await pubsub.get_message(timeout=KEEPALIVE_S)
                if message is None:
                    yield b": keepalive\n\n"
                    continue
                try:
                    envelope = Envelope.model_validate_json(message["data"])
                except ValueError:
                    continue
                if (
                    envelope.type != EVT_INSTANCE_STATUS_CHANGED
                    or envelope.organization_id != org_id
                ):
                    continue
                data = json.dumps({**envelope.payload, "at": envelope.occurred_at.isoformat()})
                yield f"event: instance\ndata: {data}\n\n".encode()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(pubsub.aclose())

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
