"""Moving bytes between the client and the engine: the request body in, bounded, and an
event stream out, relayed event by event as the engine writes it.

A stream's head is sent before its end is known, so if the engine breaks it off the
client sees it end early; a client that leaves hangs the engine up, but what the engine
already wrote is still read, because those tokens were produced and are metered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import Receive, Send

from inventiv_api.gateway.errors import GatewayError
from inventiv_api.gateway.upstream import UpstreamError, UpstreamResponse
from inventiv_api.gateway.usage import Exchange

# The event that ends an OpenAI stream.
DONE = b"data: [DONE]"


async def read_body(receive: Receive, max_bytes: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise GatewayError(400, "the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise GatewayError(413, "the body is too large", code="body_too_large")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def relay_stream(
    response: UpstreamResponse,
    receive: Receive,
    send: Send,
    exchange: Exchange,
    *,
    before_end: Callable[[], object],
) -> None:
    """Relay an event stream as it arrives, keeping its usage in `exchange`. The end of
    the stream (its `[DONE]` event and the end of the body) is held back until
    `before_end` has run, so that a client never has a whole stream that was not
    metered."""
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": [
                (b"content-type", b"text/event-stream"),
                (b"cache-control", b"no-cache"),
                exchange.request_id_header,
            ],
        }
    )
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        # Stop the engine, but keep reading what it already wrote.
        gone = exchange.client_closed = True
        response.hang_up()

    watcher = asyncio.create_task(watch())
    pending = held = b""
    try:
        async for piece in response.iter_body():
            pending += piece
            # Relay whole events as soon as they are complete.
            cut = pending.rfind(b"\n\n")
            if cut < 0:
                continue
            events, pending = pending[: cut + 2], pending[cut + 2 :]
            events = exchange.take_stream_events(events)
            if held or DONE in events:
                held += events  # the end: nothing follows it but the end of the body
            elif events and not gone:
                await send({"type": "http.response.body", "body": events, "more_body": True})
    except UpstreamError:
        if gone:
            return
        if not held:
            exchange.broken = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        pending = b""  # the engine broke off after its last event: the answer is whole
    finally:
        watcher.cancel()
    before_end()
    if not gone:
        await send({"type": "http.response.body", "body": held + pending, "more_body": False})
