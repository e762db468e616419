"""The Redis event bus: `CMD:*` commands and `EVT:*` events in one typed envelope.

Pub/sub drops messages nobody is listening for, so a message here is a wake-up hint
published after the database commit that made the work real; every consumer also
sweeps PostgreSQL for pending work. A lost message therefore delays, never loses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from inventiv_common.messages import channel_of

log = logging.getLogger(__name__)

# Messages are wake-up hints: a publish that Redis does not answer in this time is
# given up (and logged), so a loop pass or a request never waits on a Redis restart.
PUBLISH_TIMEOUT_S = 2.0

Handler = Callable[["Envelope"], Awaitable[None]]


class Envelope(BaseModel):
    """One message on the bus. `type` is `CMD:NAME` or `EVT:NAME`, one of those listed
    in `inventiv_common.messages`, which also says on which channel it travels."""

    model_config = ConfigDict(frozen=True)

    type: str = Field(pattern=r"^(CMD|EVT):[A-Z][A-Z0-9_]*$", max_length=100)
    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    organization_id: uuid.UUID | None = None
    correlation_id: str | None = Field(default=None, max_length=100)
    payload: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def is_command(self) -> bool:
        return self.type.startswith("CMD:")

    def default_channel(self) -> str:
        return channel_of(self.type).value


class EventBus:
    """Publishes and subscribes over one Redis connection pool."""

    def __init__(self, redis_url: str, *, channel_prefix: str = "") -> None:
        # A pooled connection can be stale after Redis restarts: retry on a fresh one.
        # A duplicate publish is harmless, since messages are only wake-up hints.
        self.redis: aioredis.Redis = aioredis.from_url(
            redis_url,
            socket_connect_timeout=5,
            health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        self.channel_prefix = channel_prefix

    def channel(self, name: str) -> str:
        return f"{self.channel_prefix}{name}"

    async def publish(self, envelope: Envelope, channel: str | None = None) -> int:
        """Publish now; returns how many subscribers received it. Raises on Redis errors."""
        target = self.channel(channel or envelope.default_channel())
        receivers: int = await self.redis.publish(target, envelope.model_dump_json())
        return receivers

    async def publish_safe(self, envelope: Envelope, channel: str | None = None) -> bool:
        """Publish, logging instead of raising: the sweep loops pick up what is lost."""
        try:
            await asyncio.wait_for(self.publish(envelope, channel), PUBLISH_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning(
                "event not published; the sweep will catch up",
                extra={
                    "event_type": envelope.type,
                    "event_id": str(envelope.id),
                    "error": str(exc),
                },
            )
            return False
        return True

    async def publish_many_safe(self, items: list[tuple[Envelope, str | None]]) -> bool:
        """Publish several envelopes in one round trip (a pipeline), logging instead of
        raising: a pass that moved hundreds of instances costs one Redis exchange."""
        if len(items) == 1:
            return await self.publish_safe(*items[0])
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for envelope, channel in items:
                    target = self.channel(channel or envelope.default_channel())
                    pipe.publish(target, envelope.model_dump_json())
                await asyncio.wait_for(pipe.execute(), PUBLISH_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning(
                "events not published; the sweep will catch up",
                extra={"events": len(items), "error": str(exc)},
            )
            return False
        return True

    async def ping(self) -> None:
        await self.redis.ping()

    async def close(self) -> None:
        await self.redis.aclose()

    async def listen(
        self,
        channels: Iterable[str],
        handler: Handler,
        *,
        stop: asyncio.Event | None = None,
        subscribed: asyncio.Event | None = None,
        max_backoff_s: float = 10.0,
    ) -> None:
        """Deliver each valid envelope to `handler` until `stop` is set.

        Reconnects with capped, jittered backoff when Redis goes away. `subscribed` is
        set each time the subscription is (re)established, which lets callers (and
        tests) know when publishing will be heard.
        """
        stop = stop or asyncio.Event()
        names = [self.channel(c) for c in channels]
        attempt = 0
        while not stop.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*names)
                attempt = 0
                if subscribed is not None:
                    subscribed.set()
                while not stop.is_set():
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    await self._deliver(message["data"], handler)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if subscribed is not None:
                    subscribed.clear()
                attempt += 1
                delay = min(max_backoff_s, 0.2 * 2**attempt) * (0.5 + random.random() / 2)  # noqa: S311
                log.warning(
                    "bus connection lost; reconnecting",
                    extra={"channels": names, "retry_in_s": round(delay, 2), "error": str(exc)},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    async def _deliver(self, data: bytes | str, handler: Handler) -> None:
        try:
            envelope = Envelope.model_validate_json(data)
        except ValidationError as exc:
            log.warning("malformed bus message dropped", extra={"error": str(exc)[:500]})
            return
        try:
            await handler(envelope)
        except Exception:
            # One bad message must not stop the consumer; the sweep loops retry the work.
            log.exception("bus handler failed", extra={"event_type": envelope.type})


# --- publish after commit ---------------------------------------------------------

_PENDING_KEY = "inventiv_pending_events"


def publish_after_commit(
    session: AsyncSession, envelope: Envelope, channel: str | None = None
) -> None:
    """Queue an envelope to go out only once the session's transaction commits."""
    session.info.setdefault(_PENDING_KEY, []).append((envelope, channel))


@event.listens_for(Session, "after_rollback")
def _drop_pending_on_rollback(session: Session) -> None:
    # A rolled-back transaction made nothing real: its messages must never go out.
    session.info.pop(_PENDING_KEY, None)


class Published(list[Envelope]):
    """The envelopes a commit sent out, and whether Redis took them (`delivered`)."""

    delivered: bool = True


async def commit_and_publish(session: AsyncSession, bus: EventBus) -> Published:
    """Commit, then publish what the transaction queued. Publishing never raises."""
    await session.commit()
    pending: list[tuple[Envelope, str | None]] = session.info.pop(_PENDING_KEY, [])
    published = Published(envelope for envelope, _ in pending)
    if pending:
        published.delivered = await bus.publish_many_safe(pending)
    return published
