"""Routing bus envelopes to handlers by type, and running that as a background consumer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from inventiv_common.bus import Envelope, Handler
from inventiv_common.web import ServiceResources

log = logging.getLogger(__name__)


class Dispatcher:
    """Calls the handlers registered for an envelope's type, in order; other types are
    ignored. A process has one consumer, so several of its parts may hear one type."""

    def __init__(self) -> None:
        self.handlers: dict[str, list[Handler]] = {}
        self.received = 0
        self.unhandled = 0

    def register(self, event_type: str, handler: Handler) -> None:
        self.handlers.setdefault(event_type, []).append(handler)

    async def __call__(self, envelope: Envelope) -> None:
        self.received += 1
        handlers = self.handlers.get(envelope.type)
        if not handlers:
            self.unhandled += 1
            log.debug("no handler for bus message", extra={"event_type": envelope.type})
            return
        for handler in handlers:
            try:
                await handler(envelope)
            except Exception:
                # One part's failure must not keep the message from the others.
                log.exception("bus handler failed", extra={"event_type": envelope.type})


class BusConsumer:
    """Keeps a subscription on some channels alive for the life of the process."""

    def __init__(self, channels: Iterable[str], dispatcher: Dispatcher) -> None:
        self.channels = list(channels)
        self.dispatcher = dispatcher
        self.subscribed = asyncio.Event()
        self.stop = asyncio.Event()

    async def start(self, resources: ServiceResources) -> None:
        resources.spawn(
            resources.bus.listen(
                self.channels, self.dispatcher, stop=self.stop, subscribed=self.subscribed
            ),
            name=f"bus-consumer:{','.join(self.channels)}",
        )

    def status(self) -> dict[str, object]:
        return {
            "channels": self.channels,
            "subscribed": self.subscribed.is_set(),
            "received": self.dispatcher.received,
            "handled_types": sorted(self.dispatcher.handlers),
        }
