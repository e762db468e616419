"""Waiting on an event instead of sleeping for it: poll a condition until it holds, with a
deadline generous enough for a loaded machine, and say what never came if it does not."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
# Short enough that a test moves on as soon as the event happens; the deadline, not the
# interval, is what a slow machine stretches.
POLL_INTERVAL_S = 0.05


def wait_until(
    condition: Callable[[], T | None], timeout: float, what: str, interval: float = POLL_INTERVAL_S
) -> T:
    """`condition()` once it is truthy (its value is returned); AssertionError naming
    `what` and the last value seen when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not seen within {timeout:g} s (last: {value!r})")
        time.sleep(interval)


async def wait_until_async(
    condition: Callable[[], Awaitable[T | None]],
    timeout: float,
    what: str,
    interval: float = POLL_INTERVAL_S,
) -> T:
    """`wait_until` for a condition that must be awaited (a query, an HTTP call)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not seen within {timeout:g} s (last: {value!r})")
        await asyncio.sleep(interval)
