"""Calling the Scaleway SDK from the event loop.

The SDK is synchronous (`requests` underneath; `scaleway-async` blocks the loop all the
same), so every call runs in a thread. At most `max_in_flight` run at once, so a pass
over many instances neither floods Scaleway's rate limits nor the process with
threads, and each has a deadline: the SDK sets no timeout of its own, and a call that
never answers must not hold an instance forever. (A thread past its deadline is left to
finish on its own; it only holds its slot of the pool, which is sized for that.)

Errors leave as `ProviderError` with a typed cause (errors.py). Transient causes are
retried here a few times with backoff before they are handed up.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import requests
from scaleway_core.api import ScalewayException

from inventiv_common.providers.base import ProviderError
from inventiv_common.providers.scaleway.errors import TRANSIENT, classify, unreachable

T = TypeVar("T")
log = logging.getLogger(__name__)

# The SDK logs every request and response body at DEBUG, user data (which carries the
# instance's secrets) included: that logger never speaks below WARNING here.
logging.getLogger("scaleway").setLevel(logging.WARNING)


class SdkCalls:
    def __init__(
        self,
        *,
        max_in_flight: int = 8,
        timeout_s: float = 60.0,
        retries: int = 3,
        retry_base_s: float = 0.5,
    ) -> None:
        self._slots = asyncio.Semaphore(max_in_flight)
        # Room for calls past their deadline still finishing, beside the live ones.
        self._pool = ThreadPoolExecutor(max_in_flight * 2, thread_name_prefix="scaleway")
        self.timeout_s = timeout_s
        self.retries = retries
        self.retry_base_s = retry_base_s

    async def __call__(
        self, doing: str, call: Callable[..., T], /, *args: object, **kw: object
    ) -> T:
        """`call(*args, **kw)` in a thread; `doing` says what it is, in words."""
        attempt = 0
        while True:
            try:
                return await self._once(doing, functools.partial(call, *args, **kw))
            except ProviderError as exc:
                attempt += 1
                if exc.code != TRANSIENT or attempt > self.retries:
                    raise
                delay = self.retry_base_s * 2 ** (attempt - 1) * (0.5 + random.random())  # noqa: S311
                log.info("scaleway call retried", extra={"doing": doing, "attempt": attempt})
                await asyncio.sleep(delay)

    async def _once(self, doing: str, call: Callable[[], T]) -> T:
        async with self._slots:
            loop = asyncio.get_running_loop()
            try:
                # asyncio.timeout rather than wait_for, which on Python 3.11 can
                # swallow a cancellation (the loop's shutdown) that meets the answer.
                async with asyncio.timeout(self.timeout_s):
                    return await loop.run_in_executor(self._pool, call)
            except ScalewayException as exc:
                raise classify(exc, doing) from None
            except (requests.RequestException, TimeoutError, OSError) as exc:
                raise unreachable(exc, doing) from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
