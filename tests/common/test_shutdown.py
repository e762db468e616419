"""A service's shutdown ends its background tasks, even one that loses a cancellation
(as `asyncio.wait_for` can on Python 3.11 when the awaited thing completes at the same
moment), and does not hang on one that will not stop: it names it and goes on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import pytest

from inventiv_common.loops import Loop
from inventiv_common.web import _stop_background


async def test_a_task_that_lost_its_first_cancellation_is_cancelled_again() -> None:
    ended = asyncio.Event()

    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # lost, as in the race
            await asyncio.sleep(3600)
        try:
            await asyncio.sleep(3600)
        finally:
            ended.set()

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)  # let it start
    await _stop_background([task], timeout_s=5)
    assert task.cancelled() and ended.is_set()


async def test_a_task_that_never_stops_is_named_and_left(caplog: pytest.LogCaptureFixture) -> None:
    released = asyncio.Event()

    async def deaf() -> None:
        while not released.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

    task = asyncio.create_task(deaf(), name="deaf-task")
    await asyncio.sleep(0)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR):
        await _stop_background([task], timeout_s=0.5)
    assert time.monotonic() - started < 5  # bounded by the time allowed, not forever
    assert not task.done()
    assert any(getattr(r, "tasks", None) == ["deaf-task"] for r in caplog.records), caplog.records
    released.set()  # leave nothing running behind the test
    task.cancel()
    await task


class Idle(Loop):
    name = "idle"

    async def run_once(self) -> int:
        return 0


async def test_a_loop_waiting_for_its_next_pass_stops_on_cancel() -> None:
    loop = Idle(interval_s=3600)
    task = asyncio.create_task(loop.run(asyncio.Event()))
    while loop.passes < 1:
        await asyncio.sleep(0.01)
    await _stop_background([task], timeout_s=5)
    assert task.cancelled()
