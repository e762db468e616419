"""The one shape of background work: `run_once()` does a pass, `run()` repeats it every
`interval_s` or as soon as `wake()` is called (a bus message is only such a hint)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


class PassFailed(Exception):
    """A pass that failed for a reason known not to be a bug (a dependency is away): logged
    as one line instead of a traceback, and kept as the loop's last error."""


class Loop:
    name = "loop"
    # Shortest time between two passes, however often the loop is woken: a burst of
    # wake-ups (hundreds of workers registering) then costs a few passes, not hundreds.
    min_gap_s = 0.0

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._wake = asyncio.Event()
        self.passes = 0
        self.last_error: str | None = None
        # How long the last pass took and what it acted on: what an operator (or the
        # lifecycle benchmark) reads to see whether passes keep up with the interval.
        self.last_pass_ms: float | None = None
        self.last_pass_items: int | None = None

    def wake(self) -> None:
        self._wake.set()

    async def run_once(self) -> int:
        """One pass; returns how many items it acted on."""
        raise NotImplementedError

    async def run(self, stop: asyncio.Event, passes: int | None = None) -> None:
        """Repeat until `stop`, or for exactly `passes` passes (tests)."""
        while not stop.is_set() and (passes is None or self.passes < passes):
            self._wake.clear()
            started, items = time.perf_counter(), None
            try:
                items = await self.run_once()
                self.last_error = None
            except PassFailed as exc:
                self.last_error = str(exc)
                log.warning("loop pass failed", extra={"loop": self.name, "error": str(exc)})
            except Exception as exc:  # a pass that fails is retried on the next one
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("loop pass failed", extra={"loop": self.name})
            self.last_pass_ms = round((time.perf_counter() - started) * 1000, 1)
            self.last_pass_items = items
            self.passes += 1
            if self.min_gap_s:
                await asyncio.sleep(self.min_gap_s)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that lands as the wake-up does, and the loop would outlive
            # its process's shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await self._wake.wait()

    def status(self) -> dict[str, Any]:
        return {
            "interval_s": self.interval_s,
            "passes": self.passes,
            "last_error": self.last_error,
            "last_pass_ms": self.last_pass_ms,
            "last_pass_items": self.last_pass_items,
        }


def loops_status(loops: Mapping[str, Loop]) -> dict[str, dict[str, Any]]:
    """Each loop's status, by name: what a process's /admin/status shows."""
    return {name: loop.status() for name, loop in loops.items()}
