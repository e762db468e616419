"""The event bus over real Redis: round trip, publish-after-commit, reconnect."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from inventiv_common.bus import (
    PUBLISH_TIMEOUT_S,
    Envelope,
    EventBus,
    commit_and_publish,
    publish_after_commit,
)
from inventiv_common.db.models import Provider
from inventiv_common.messages import CMD_PROVISION, Channel
from tests.support.redis_servers import ThrowawayRedis
from tests.support.waiting import wait_until_async

# How long a message, a subscription or a listener's stop may take on a loaded machine
# before the test calls it lost: a deadline, never a pause (they come at once).
ARRIVES_WITHIN_S = 30


async def arrival(received: asyncio.Queue[Envelope]) -> Envelope:
    """The next message heard; a failure once ARRIVES_WITHIN_S have passed without one."""
    return await asyncio.wait_for(received.get(), ARRIVES_WITHIN_S)


@asynccontextmanager
async def listening(
    bus: EventBus, channels: list[str]
) -> AsyncIterator[tuple[asyncio.Queue[Envelope], asyncio.Event]]:
    received: asyncio.Queue[Envelope] = asyncio.Queue()
    subscribed = asyncio.Event()
    stop = asyncio.Event()

    async def handler(envelope: Envelope) -> None:
        await received.put(envelope)

    task = asyncio.create_task(
        bus.listen(channels, handler, stop=stop, subscribed=subscribed, max_backoff_s=0.5)
    )
    await asyncio.wait_for(subscribed.wait(), ARRIVES_WITHIN_S)
    try:
        yield received, subscribed
    finally:
        stop.set()
        await asyncio.wait_for(task, ARRIVES_WITHIN_S)


def test_envelope_types_are_validated() -> None:
    assert Envelope(type="CMD:PROVISION").default_channel() == Channel.orchestrator
    assert Envelope(type="EVT:TOKENS_USED").default_channel() == Channel.finops
    for bad in ("PROVISION", "cmd:provision", "CMD:", "EVT:bad-name"):
        with pytest.raises(ValidationError):
            Envelope(type=bad)


async def test_round_trip_keeps_every_field(bus: EventBus) -> None:
    org = uuid.uuid4()
    sent = Envelope(
        type=CMD_PROVISION,
        organization_id=org,
        correlation_id="req-1",
        payload={"instance_id": str(uuid.uuid4()), "n": 3},
    )
    async with listening(bus, [Channel.orchestrator, Channel.finops]) as (received, _):
        assert await bus.publish(sent) == 1
        await bus.publish(Envelope(type="EVT:COST_COMPUTED"))
        first = await arrival(received)
        second = await arrival(received)
    assert first == sent
    assert second.type == "EVT:COST_COMPUTED"


async def test_malformed_messages_are_skipped(bus: EventBus) -> None:
    async with listening(bus, [Channel.orchestrator]) as (received, _):
        await bus.redis.publish(bus.channel(Channel.orchestrator), b"not json")
        await bus.redis.publish(bus.channel(Channel.orchestrator), b'{"type": "nope"}')
        await bus.publish(Envelope(type=CMD_PROVISION))
        got = await arrival(received)
    assert got.type == CMD_PROVISION
    assert received.empty()


async def test_events_go_out_only_after_commit(engine: AsyncEngine, bus: EventBus) -> None:
    code = f"test-{uuid.uuid4().hex[:8]}"
    async with listening(bus, [Channel.orchestrator]) as (received, _):
        async with AsyncSession(engine) as session:
            session.add(Provider(code=code + "-rolled-back", name="x"))
            publish_after_commit(session, Envelope(type="CMD:RECONCILE", correlation_id="rollback"))
            await session.rollback()
            # Nothing may leak from the rolled-back transaction into the next one.
            session.add(Provider(code=code, name="x"))
            publish_after_commit(session, Envelope(type="CMD:RECONCILE", correlation_id="commit"))
            published = await commit_and_publish(session, bus)
        # Published after the commit's messages were taken by Redis, so it arrives after
        # any of them: once it is here, whatever leaked from the rollback would be too.
        await bus.publish(Envelope(type="CMD:RECONCILE", correlation_id="end"))
        got = [await arrival(received)]
        while got[-1].correlation_id != "end":
            got.append(await arrival(received))
    assert [e.correlation_id for e in published] == ["commit"]
    assert [e.correlation_id for e in got] == ["commit", "end"]


async def test_a_transaction_s_events_go_out_together_in_order(
    engine: AsyncEngine, bus: EventBus
) -> None:
    sent = [
        Envelope(type="CMD:RECONCILE", correlation_id="1"),
        Envelope(type="EVT:COST_COMPUTED", correlation_id="2"),
        Envelope(type="CMD:PROVISION", correlation_id="3"),
    ]
    async with listening(bus, [Channel.orchestrator, Channel.finops]) as (received, _):
        async with AsyncSession(engine) as session:
            for envelope in sent:
                publish_after_commit(session, envelope)
            await commit_and_publish(session, bus)
        got = [await arrival(received) for _ in sent]
    assert got == sent


async def test_publish_safe_survives_redis_being_down(tmp_path: Path) -> None:
    redis = ThrowawayRedis(tmp_path)
    redis.start()
    bus = EventBus(redis.url)
    try:
        assert await bus.publish_safe(Envelope(type="CMD:RECONCILE"))
        redis.stop()
        assert not await bus.publish_safe(Envelope(type="CMD:RECONCILE"))
        pair = [(Envelope(type="CMD:RECONCILE"), None), (Envelope(type="CMD:PROVISION"), None)]
        assert not await bus.publish_many_safe(pair)
    finally:
        redis.stop()
        await bus.close()


async def test_listener_reconnects_after_redis_restarts(tmp_path: Path) -> None:
    redis = ThrowawayRedis(tmp_path)
    redis.start()
    bus = EventBus(redis.url)
    try:
        async with listening(bus, [Channel.orchestrator]) as (received, subscribed):
            await bus.publish(Envelope(type="CMD:RECONCILE", correlation_id="before"))
            assert (await arrival(received)).correlation_id == "before"

            redis.stop()

            async def lost() -> bool:
                return not subscribed.is_set()

            await wait_until_async(lost, 30, "the listener noticing that Redis went away")
            redis.start()
            await asyncio.wait_for(subscribed.wait(), ARRIVES_WITHIN_S)

            await bus.publish(Envelope(type="CMD:RECONCILE", correlation_id="after"))
            assert (await arrival(received)).correlation_id == "after"
    finally:
        redis.stop()
        await bus.close()


async def test_a_redis_that_never_answers_does_not_hold_a_publisher() -> None:
    """A server that takes the connection and then says nothing (a Redis half-way
    through a restart): publishing gives up after PUBLISH_TIMEOUT_S instead of holding
    the loop pass or the request that published."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    bus = EventBus(f"redis://127.0.0.1:{port}/0")
    # Without a timeout a publish waits for the silent server forever; with one it gives
    # up after about PUBLISH_TIMEOUT_S. The bound tells the two apart, and is kept wide
    # (ten times) so that a slow, loaded machine does not fail it.
    held_at_most = 10 * PUBLISH_TIMEOUT_S
    try:
        single = bus.publish_safe(Envelope(type=CMD_PROVISION))
        assert await asyncio.wait_for(single, held_at_most) is False
        pair = [(Envelope(type=CMD_PROVISION), None), (Envelope(type=CMD_PROVISION), None)]
        assert await asyncio.wait_for(bus.publish_many_safe(pair), held_at_most) is False
        assert accepted, "the client did reach the silent server"
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await bus.close()
