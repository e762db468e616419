"""An API key's requests and tokens per minute, counted in Redis across api replicas.

A request is admitted if its key is under both limits; its tokens are known only once
the engine answered, so they count against the key's next requests. `KeyLimits` is one
request's side of this, and the one place its tokens are counted: exactly once, as
soon as they are known, whichever way the exchange ended.

Redis being unreachable must not stop inference: the request goes through uncounted,
and that is logged.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from inventiv_api.gateway.callers import Caller
from inventiv_api.gateway.errors import rate_limited
from inventiv_api.security.ratelimit import RateLimiter

log = logging.getLogger(__name__)
WINDOW_S = 60


class KeyLimits:
    """The limits of the key behind one request."""

    __slots__ = ("_caller", "_limiter", "_tokens_counted")

    def __init__(self, limiter: RateLimiter, caller: Caller) -> None:
        self._limiter = limiter
        self._caller = caller
        self._tokens_counted = False

    async def admit(self) -> None:
        """Count the request; a GatewayError (429) if the key is over either limit."""
        caller = self._caller
        key_id = caller.principal.api_key_id
        try:
            if caller.requests_per_minute:
                verdict = await self._limiter.hit(
                    f"key-rpm:{key_id}", caller.requests_per_minute, WINDOW_S
                )
                if not verdict.allowed:
                    raise rate_limited("requests", verdict.retry_after_s)
            if caller.tokens_per_minute:
                verdict = await self._limiter.peek(f"key-tpm:{key_id}", caller.tokens_per_minute)
                if not verdict.allowed:
                    raise rate_limited("tokens", verdict.retry_after_s)
        except RedisError as exc:
            log.warning("rate limits not checked: Redis unreachable", extra={"error": str(exc)})

    async def count_tokens(self, tokens: int) -> None:
        """Add the exchange's tokens to the key's tokens per minute. Only the first call
        counts: the proxy calls it as early as the tokens are known (before a JSON
        answer leaves, so the caller's next request already sees them) and again when
        the exchange is over, for streams and failures."""
        if self._tokens_counted or not self._caller.tokens_per_minute:
            return
        try:
            await self._limiter.add(
                f"key-tpm:{self._caller.principal.api_key_id}", tokens, WINDOW_S
            )
        except RedisError as exc:
            log.warning("tokens not counted: Redis unreachable", extra={"error": str(exc)})
        self._tokens_counted = True
