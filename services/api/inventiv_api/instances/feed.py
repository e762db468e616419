"""/events/instances: a server-sent events stream of the workspace's instance changes.

The orchestrator publishes each change it commits on the instances channel. The api
hears it once, through its one bus consumer, and `InstanceFeed` fans it out to the
live-feed clients of that organization: a thousand open consoles cost one Redis
subscription, not a thousand. Pub/sub drops what nobody hears, so the console refreshes
its list on (re)connect and uses the stream for what follows; a client too slow to
keep up is disconnected (its stream ends) rather than left to fall ever further behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from inventiv_api.security.permissions import Permission as P
from inventiv_api.security.principal import Principal, require
from inventiv_api.security.workspace import current_org_id
from inventiv_common.bus import Envelope

router = APIRouter(tags=["instances"])
Reader = Annotated[Principal, Depends(require(P.instances_read))]
KEEPALIVE_S = 15.0
# Changes a client may have waiting before it is cut off (it reconnects and refreshes).
CLIENT_BACKLOG = 256


class FeedClient:
    def __init__(self) -> None:
        # None marks the end: the client fell behind and must reconnect.
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(CLIENT_BACKLOG + 1)

    def offer(self, event: bytes) -> bool:
        """Queue an event; False (and the end marker) once the backlog is full."""
        if self.queue.qsize() >= CLIENT_BACKLOG:
            self.queue.put_nowait(None)
            return False
        self.queue.put_nowait(event)
        return True


class InstanceFeed:
    """The live-feed clients of each organization, and what the bus consumer tells them."""

    def __init__(self, subscribed: asyncio.Event) -> None:
        # Set while the process's bus consumer is subscribed: a client is told it is
        # connected only once what follows will reach it.
        self.subscribed = subscribed
        self._clients: dict[uuid.UUID, set[FeedClient]] = {}
        self.delivered = 0
        self.dropped_clients = 0

    @contextmanager
    def subscribe(self, organization_id: uuid.UUID) -> Iterator[FeedClient]:
        client = FeedClient()
        self._clients.setdefault(organization_id, set()).add(client)
        try:
            yield client
        finally:
            self._forget(organization_id, client)

    def _forget(self, organization_id: uuid.UUID, client: FeedClient) -> None:
        clients = self._clients.get(organization_id)
        if clients is not None:
            clients.discard(client)
            if not clients:
                del self._clients[organization_id]

    async def on_instance_changed(self, envelope: Envelope) -> None:
        if envelope.organization_id is None:
            return
        clients = self._clients.get(envelope.organization_id)
        if not clients:
            return
        data = json.dumps({**envelope.payload, "at": envelope.occurred_at.isoformat()})
        event = f"event: instance\ndata: {data}\n\n".encode()
        for client in list(clients):
            if client.offer(event):
                self.delivered += 1
            else:
                self.dropped_clients += 1
                self._forget(envelope.organization_id, client)

    def status(self) -> dict[str, object]:
        return {
            "subscribed": self.subscribed.is_set(),
            "clients": sum(len(c) for c in self._clients.values()),
            "delivered": self.delivered,
            "dropped_clients": self.dropped_clients,
        }


@router.get("/events/instances", response_class=StreamingResponse)
async def instance_events(principal: Reader, request: Request) -> StreamingResponse:
    org_id = current_org_id(principal)
    feed: InstanceFeed = request.app.state.instance_feed

    async def stream() -> AsyncIterator[bytes]:
        with feed.subscribe(org_id) as client:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(feed.subscribed.wait(), KEEPALIVE_S)
            yield b"event: ready\ndata: {}\n\n"
            while not await request.is_disconnected():
                try:
                    event = await asyncio.wait_for(client.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if event is None:
                    return
                yield event

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
