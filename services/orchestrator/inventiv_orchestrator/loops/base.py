"""The one shape of background work: `run_once()` does a pass, `run()` repeats it every
`interval_s` or as soon as `wake()` is called (a bus message is only such a hint)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_common.db.models import Instance

log = logging.getLogger(__name__)


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

    def wake(self) -> None:
        self._wake.set()

    async def run_once(self) -> int:
        """One pass; returns how many items it acted on."""
        raise NotImplementedError

    async def run(self, stop: asyncio.Event, passes: int | None = None) -> None:
        """Repeat until `stop`, or for exactly `passes` passes (tests)."""
        while not stop.is_set() and (passes is None or self.passes < passes):
            self._wake.clear()
            try:
                await self.run_once()
                self.last_error = None
            except Exception as exc:  # a pass that fails is retried on the next one
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("loop pass failed", extra={"loop": self.name})
            self.passes += 1
            if self.min_gap_s:
                await asyncio.sleep(self.min_gap_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval_s)

    def status(self) -> dict[str, Any]:
        return {"interval_s": self.interval_s, "passes": self.passes, "last_error": self.last_error}


async def claim(
    session: AsyncSession, conditions: Sequence[ColumnElement[bool]], limit: int
) -> list[Instance]:
    """Lock up to `limit` matching instances, least recently processed first; others
    skip locked rows, so two orchestrators never work on one instance at once. Rows
    already in the session are refreshed (a claim after a commit sees them anew)."""
    return list(
        (
            await session.scalars(
                select(Instance)
                .where(*conditions)
                .order_by(Instance.last_processed_at.asc().nulls_first(), Instance.created_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
                .execution_options(populate_existing=True)
            )
        ).all()
    )


async def claim_one(
    session: AsyncSession, conditions: Sequence[ColumnElement[bool]]
) -> Instance | None:
    claimed = await claim(session, conditions, 1)
    return claimed[0] if claimed else None
