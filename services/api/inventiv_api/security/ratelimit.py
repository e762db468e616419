"""Fixed-window counters in Redis, shared by every api replica.

A window starts with `SET key 0 EX window NX` and counts with INCR in the same
transaction: commands every Redis since 2.6 has, so the embedded Redis of `make dev`
(6.x) limits exactly as production does (EXPIRE ... NX needs 7.0)."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_s: int


class RateLimiter:
    def __init__(self, redis: aioredis.Redis, namespace: str = "rl") -> None:
        self.redis = redis
        self.namespace = namespace

    async def hit(self, key: str, limit: int, window_s: int) -> Verdict:
        """Count one event; refused once more than `limit` happened in the window."""
        full_key = f"{self.namespace}:{key}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(full_key, 0, ex=window_s, nx=True)
            pipe.incr(full_key)
            pipe.ttl(full_key)
            _, count, ttl = await pipe.execute()
        return Verdict(count <= limit, max(int(ttl), 1))

    async def add(self, key: str, amount: int, window_s: int) -> None:
        """Count `amount` events at once (tokens, say) in the current window."""
        full_key = f"{self.namespace}:{key}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(full_key, 0, ex=window_s, nx=True)
            pipe.incrby(full_key, amount)
            await pipe.execute()

    async def peek(self, key: str, limit: int) -> Verdict:
        """Whether the counter is already over its limit, without counting."""
        full_key = f"{self.namespace}:{key}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(full_key)
            pipe.ttl(full_key)
            raw, ttl = await pipe.execute()
        count = int(raw or 0)
        return Verdict(count < limit, max(int(ttl), 1))
