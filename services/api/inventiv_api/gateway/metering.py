"""Every request through the gateway yields one usage record, written off the request
path: records wait in memory and go to PostgreSQL in batches (the detail rows in
finops.inference_usage, the running totals in instance_request_metrics) with one
EVT:INFERENCE_USAGE_RECORDED per batch on the finops channel.

A batch that cannot be written (PostgreSQL down) stays at the head of the buffer and
is retried; rows are keyed by request id, so a batch retried after a commit whose
answer was lost is not inserted twice. The buffer is bounded: past MAX_PENDING the
oldest records are dropped and counted, so a long outage cannot exhaust memory.

The meter is a loop: it writes what is pending every second, and once more at
shutdown so that what was metered since the last pass is not lost.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventiv_common.bus import Envelope, EventBus
from inventiv_common.db.models import InstanceRequestMetrics
from inventiv_common.loops import Loop
from inventiv_common.messages import EVT_INFERENCE_USAGE_RECORDED

log = logging.getLogger(__name__)
MAX_PENDING = 200_000
BATCH = 2_000
COLUMNS = (
    "request_id",
    "occurred_at",
    "organization_id",
    "user_id",
    "api_key_id",
    "instance_id",
    "model_id",
    "model_name",
    "endpoint",
    "stream",
    "prompt_tokens",
    "completion_tokens",
    "time_to_first_token_ms",
    "latency_ms",
    "status_code",
    "status",
    "total_tokens",
)
# SQL built from the fixed column names above, never from input. The staging table is
# per connection and emptied at each commit.
_COLUMN_LIST = ", ".join(COLUMNS)
STAGING_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS usage_batch ON COMMIT DELETE ROWS AS "  # noqa: S608
    f"SELECT {_COLUMN_LIST} FROM finops.inference_usage WITH NO DATA"
)
INSERT_NEW = (
    f"INSERT INTO finops.inference_usage ({_COLUMN_LIST}) "  # noqa: S608
    f"SELECT {_COLUMN_LIST} FROM usage_batch "
    "ON CONFLICT (request_id, occurred_at) DO NOTHING RETURNING request_id"
)


@dataclass(frozen=True)
class Usage:
    request_id: str
    occurred_at: datetime
    organization_id: uuid.UUID
    user_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    instance_id: uuid.UUID
    model_id: uuid.UUID
    model_name: str
    endpoint: str
    stream: bool
    prompt_tokens: int
    completion_tokens: int
    time_to_first_token_ms: int | None
    latency_ms: int
    status_code: int
    status: str  # success | error | client_closed

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Meter(Loop):
    name = "gateway-meter"

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        bus: EventBus,
        *,
        interval_s: float = 1.0,
    ) -> None:
        super().__init__(interval_s)
        self.session_factory = session_factory
        self.bus = bus
        self.pending: deque[Usage] = deque()
        self.written = 0
        self.dropped = 0
        self._lock = asyncio.Lock()

    def record(self, usage: Usage) -> None:
        if len(self.pending) >= MAX_PENDING:
            self.pending.popleft()
            self.dropped += 1
        self.pending.append(usage)

    async def flush(self) -> int:
        """Write what is pending, batch by batch; returns how many were written. Stops
        at the first batch that fails (it stays pending)."""
        written = 0
        async with self._lock:  # a pass and the shutdown flush never overlap
            while self.pending:
                batch = [self.pending[i] for i in range(min(BATCH, len(self.pending)))]
                try:
                    await self._write(batch)
                except Exception as exc:
                    log.warning(
                        "usage batch not written; will retry",
                        extra={"records": len(batch), "error": str(exc)[:300]},
                    )
                    break
                for _ in batch:
                    self.pending.popleft()
                written += len(batch)
                self.written += len(batch)
                await self.bus.publish_safe(
                    Envelope(type=EVT_INFERENCE_USAGE_RECORDED, payload={"records": len(batch)})
                )
        return written

    async def _write(self, batch: list[Usage]) -> None:
        async with self.session_factory() as session:
            # COPY the batch into a session-local table, then insert what is new from
            # it: the rows travel in the binary COPY format, so the event loop spends
            # little on thousands of records (a statement with thousands of parameter
            # sets costs it tens of milliseconds).
            # Through the session first: that opens the transaction the COPY joins (on its
            # own the driver would autocommit, and the staging rows vanish at once).
            await session.execute(text(STAGING_TABLE))
            driver = (await (await session.connection()).get_raw_connection()).driver_connection
            assert driver is not None
            await driver.copy_records_to_table(
                "usage_batch",
                records=[(*(getattr(u, c) for c in COLUMNS[:-1]), u.total_tokens) for u in batch],
                columns=COLUMNS,
            )
            fresh = {row[0] for row in await driver.fetch(INSERT_NEW)}
            # A retried batch whose first commit went through unseen: only new rows count.
            totals = _totals([u for u in batch if u.request_id in fresh])
            if not totals:
                await session.commit()
                return
            metrics = pg_insert(InstanceRequestMetrics).values(totals)
            added = metrics.excluded
            table = InstanceRequestMetrics
            await session.execute(
                metrics.on_conflict_do_update(
                    index_elements=["instance_id"],
                    set_={
                        "total_requests": table.total_requests + added.total_requests,
                        "successful_requests": table.successful_requests
                        + added.successful_requests,
                        "failed_requests": table.failed_requests + added.failed_requests,
                        "input_tokens": table.input_tokens + added.input_tokens,
                        "output_tokens": table.output_tokens + added.output_tokens,
                        "total_tokens": table.total_tokens + added.total_tokens,
                        "first_request_at": func.least(
                            table.first_request_at, added.first_request_at
                        ),
                        "last_request_at": func.greatest(
                            table.last_request_at, added.last_request_at
                        ),
                        "updated_at": func.now(),
                    },
                )
            )
            await session.commit()

    async def run_once(self) -> int:
        return await self.flush()

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "pending": len(self.pending),
            "written": self.written,
            "dropped": self.dropped,
        }


def _totals(batch: list[Usage]) -> list[dict[str, Any]]:
    """Per instance: the increments of its running totals."""
    totals: dict[uuid.UUID, dict[str, Any]] = {}
    for u in batch:
        t = totals.setdefault(
            u.instance_id,
            {
                "instance_id": u.instance_id,
                "total_requests": 0,
                "successful_requests": 0,
                "failed_requests": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "total_tokens": 0,
                "first_request_at": u.occurred_at,
                "last_request_at": u.occurred_at,
            },
        )
        t["total_requests"] += 1
        t["successful_requests" if u.status == "success" else "failed_requests"] += 1
        t["input_tokens"] += u.prompt_tokens
        t["output_tokens"] += u.completion_tokens
        t["total_tokens"] += u.total_tokens
        t["first_request_at"] = min(t["first_request_at"], u.occurred_at)
        t["last_request_at"] = max(t["last_request_at"], u.occurred_at)
    return list(totals.values())
