"""Bus overhead: our typed envelopes against raw Redis pub/sub of the same bytes.

Both sides publish N messages through one connection and receive them through a
subscriber, on the same Redis, alternately, in one run. The ratio is what the
envelope (validation, JSON, UUIDs, timestamps) costs on top of Redis itself.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid

import redis.asyncio as aioredis

from inventiv_common.bus import Envelope, EventBus

MESSAGES = int(os.environ.get("BENCH_BUS_MESSAGES", "5000"))
ROUNDS = 3
TARGET_RATIO = 0.5  # our throughput at least half of raw Redis pub/sub


async def _raw_round(url: str, channel: str, payload: bytes) -> float:
    pub = aioredis.from_url(url)
    sub = aioredis.from_url(url).pubsub()
    await sub.subscribe(channel)
    await sub.get_message(timeout=1)
    started = time.perf_counter()

    async def consume() -> None:
        got = 0
        while got < MESSAGES:
            message = await sub.get_message(ignore_subscribe_messages=True, timeout=5)
            if message is not None:
                got += 1

    consumer = asyncio.create_task(consume())
    for _ in range(MESSAGES):
        await pub.publish(channel, payload)
    await consumer
    elapsed = time.perf_counter() - started
    await sub.aclose()
    await pub.aclose()
    return MESSAGES / elapsed


async def _bus_round(url: str, prefix: str) -> float:
    bus = EventBus(url, channel_prefix=prefix)
    received = 0
    done = asyncio.Event()
    subscribed = asyncio.Event()
    stop = asyncio.Event()

    async def handler(envelope: Envelope) -> None:
        nonlocal received
        received += 1
        if received == MESSAGES:
            done.set()

    listener = asyncio.create_task(
        bus.listen(["orchestrator_events"], handler, stop=stop, subscribed=subscribed)
    )
    await subscribed.wait()
    started = time.perf_counter()
    instance_id = str(uuid.uuid4())
    for _ in range(MESSAGES):
        await bus.publish(Envelope(type="CMD:PROVISION", payload={"instance_id": instance_id}))
    await asyncio.wait_for(done.wait(), 60)
    elapsed = time.perf_counter() - started
    stop.set()
    await listener
    await bus.close()
    return MESSAGES / elapsed


async def run(url: str) -> None:
    prefix = f"bench-{uuid.uuid4().hex[:6]}:"
    sample = Envelope(type="CMD:PROVISION", payload={"instance_id": str(uuid.uuid4())})
    payload = sample.model_dump_json().encode()
    raw, ours = [], []
    for _ in range(ROUNDS):
        raw.append(await _raw_round(url, f"{prefix}raw", payload))
        ours.append(await _bus_round(url, prefix))
    raw_rate, our_rate = statistics.median(raw), statistics.median(ours)
    ratio = our_rate / raw_rate
    print(f"messages per round: {MESSAGES}, rounds: {ROUNDS} (medians)")
    print(f"raw redis pub/sub : {raw_rate:10.0f} msg/s")
    print(f"inventiv bus      : {our_rate:10.0f} msg/s")
    print(f"ratio ours/raw    : {ratio:10.2f}  (target >= {TARGET_RATIO})")


def main() -> None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    asyncio.run(run(url))
