"""Heartbeats are absorbed in memory and written in batches.

Each heartbeat replaces the previous one of its instance in the buffer; every flush
writes one UPDATE for all instances (one more for workers that just registered) and
one INSERT per sample table, so thousands of workers cost a few statements a second,
not one transaction per heartbeat. A heartbeat whose phase differs from the last one
seen (a worker that just became ready, or is draining), and a registration, are written
at once and wake whoever waits for them: state changes are not held back by batching.

`HeartbeatBuffer` holds what arrived since the last flush; `HeartbeatWriter`, one of
the orchestrator's loops, flushes it every interval and whenever the buffer wakes it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, Update, bindparam, insert, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventiv_common.db.models import GpuSample, Instance, SystemSample
from inventiv_common.loops import Loop, PassFailed

log = logging.getLogger(__name__)
MAX_PENDING_SAMPLES = 200_000
# Phases of workers silent this long are forgotten (their instances are gone or moved).
FORGET_PHASE_AFTER_S = 3600.0
SYSTEM_FIELDS = (
    "cpu_pct",
    "load_1m",
    "memory_used_bytes",
    "memory_total_bytes",
    "disk_used_bytes",
    "disk_total_bytes",
    "net_rx_bytes",
    "net_tx_bytes",
)
GPU_FIELDS = ("utilization_pct", "memory_used_mb", "memory_total_mb", "temperature_c", "power_w")


@dataclass
class HeartbeatBuffer:
    latest: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    registrations: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    system_rows: list[dict[str, Any]] = field(default_factory=list)
    gpu_rows: list[dict[str, Any]] = field(default_factory=list)
    flushes: int = 0
    rows_written: int = 0
    # instance -> (last phase seen, when): tells a phase change from a routine beat.
    phases: dict[uuid.UUID, tuple[str | None, float]] = field(default_factory=dict)
    # Set when something must be written at once; `on_urgent` is told (the writer's wake).
    urgent: asyncio.Event = field(default_factory=asyncio.Event)
    on_urgent: Callable[[], None] = field(default=lambda: None, repr=False)

    def _mark_urgent(self) -> None:
        self.urgent.set()
        self.on_urgent()

    def registered(self, instance_id: uuid.UUID, facts: dict[str, Any]) -> None:
        """A worker just registered: its instance's worker columns, written at once (the
        health loop moves the instance on when it sees them)."""
        self.registrations[instance_id] = {"b_id": instance_id, **facts}
        self._mark_urgent()

    def add(self, instance_id: uuid.UUID, beat: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        phase = str(beat.get("phase"))[:32] if beat.get("phase") else None
        seen = self.phases.get(instance_id)
        if seen is None or seen[0] != phase:
            self._mark_urgent()
        self.phases[instance_id] = (phase, time.monotonic())
        reported = beat.get("engine")
        engine: dict[str, Any] = reported if isinstance(reported, dict) else {}
        gpus = [g for g in beat.get("gpus") or [] if isinstance(g, dict)]
        utilization = [u for g in gpus if (u := _real(g.get("utilization_pct"))) is not None]
        self.latest[instance_id] = {
            "b_id": instance_id,
            "worker_last_heartbeat": now,
            "worker_phase": phase,
            "worker_status": "healthy" if engine.get("healthy") else "registered",
            "worker_queue_depth": _count(engine.get("requests_waiting"), INT32_MAX) or 0,
            "worker_gpu_utilization": sum(utilization) / len(utilization) if utilization else None,
            "worker_agent_version": str(beat.get("agent_version"))[:64]
            if beat.get("agent_version")
            else None,
        }
        if len(self.system_rows) + len(self.gpu_rows) > MAX_PENDING_SAMPLES:
            return  # the database is behind: keep state, shed samples
        system = beat.get("system")
        if isinstance(system, dict):
            self.system_rows.append(
                {
                    "instance_id": instance_id,
                    "time": now,
                    **{k: _system_value(k, system.get(k)) for k in SYSTEM_FIELDS},
                }
            )
        indexes: set[int] = set()
        for gpu in gpus:
            index = _count(gpu.get("gpu_index"), MAX_GPU_INDEX)
            # One row per GPU and beat: a repeated index would break the whole batch.
            if index is not None and index not in indexes:
                indexes.add(index)
                self.gpu_rows.append(
                    {
                        "instance_id": instance_id,
                        "gpu_index": index,
                        "time": now,
                        **{k: _real(gpu.get(k)) for k in GPU_FIELDS},
                    }
                )

    async def flush(self, session_factory: async_sessionmaker[AsyncSession]) -> int:
        """Write what is buffered; returns how many rows. A failure is logged, and what
        was not written waits for the next flush."""
        try:
            return await self.write(session_factory)
        except Exception:
            log.exception("heartbeat flush failed; will retry")
            return 0

    async def write(self, session_factory: async_sessionmaker[AsyncSession]) -> int:
        """`flush`, but a failure is raised once what was not written is put back."""
        if not (self.latest or self.registrations or self.system_rows or self.gpu_rows):
            return 0
        registered, self.registrations = list(self.registrations.values()), {}
        latest, self.latest = list(self.latest.values()), {}
        system, self.system_rows = self.system_rows, []
        gpus, self.gpu_rows = self.gpu_rows, []
        try:
            async with session_factory() as session:
                # Facts sent again every interval: the commit need not wait for the disk.
                await session.execute(text("SET LOCAL synchronous_commit TO off"))
                # Registrations first: a heartbeat of the same flush is newer.
                for rows in (registered, latest):
                    if rows:
                        await session.execute(_update_by_id(rows[0]), rows)
                if system:
                    await session.execute(insert(SystemSample), system)
                if gpus:
                    await session.execute(insert(GpuSample), gpus)
                await session.commit()
        except Exception:
            # Keep what was not written; newer heartbeats and registrations win.
            for row in registered:
                self.registrations.setdefault(row["b_id"], row)
            for row in latest:
                self.latest.setdefault(row["b_id"], row)
            self.system_rows[:0], self.gpu_rows[:0] = system, gpus
            raise
        self.flushes += 1
        written = len(registered) + len(latest) + len(system) + len(gpus)
        self.rows_written += written
        return written

    def forget_silent(self) -> None:
        cutoff = time.monotonic() - FORGET_PHASE_AFTER_S
        for instance_id in [i for i, (_, at) in self.phases.items() if at < cutoff]:
            del self.phases[instance_id]


class HeartbeatWriter(Loop):
    """Flushes `buffer` every `interval_s`, and at once when the buffer wakes it (a
    registration, a phase change); after such a flush `on_phase_change` is told (the
    health loop, which acts on the news). A failed flush is the pass's error; what it
    did not write is written by the next one."""

    name = "heartbeats"

    def __init__(
        self,
        buffer: HeartbeatBuffer,
        session_factory: async_sessionmaker[AsyncSession],
        interval_s: float,
        on_phase_change: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(interval_s)
        self.buffer = buffer
        self.session_factory = session_factory
        self.on_phase_change = on_phase_change
        self._forget_at = time.monotonic() + interval_s
        buffer.on_urgent = self.wake

    async def run_once(self) -> int:
        urgent = self.buffer.urgent.is_set()
        self.buffer.urgent.clear()
        try:
            return await self.buffer.write(self.session_factory)
        except (DBAPIError, OSError, TimeoutError) as exc:
            # PostgreSQL away: one line a pass, the rows kept for the next one.
            raise PassFailed(f"heartbeats not written, will retry: {exc}"[:300]) from exc
        finally:
            if urgent:
                self.on_phase_change()
            if time.monotonic() >= self._forget_at:
                self._forget_at = time.monotonic() + self.interval_s
                self.buffer.forget_silent()


def _update_by_id(row: dict[str, Any]) -> Update:
    """One UPDATE run for many instances: `row`'s columns, matched on b_id. A plain
    column UPDATE: worker facts are not state changes, so they do not bump the
    instance's version."""
    table = cast(Table, Instance.__table__)
    return (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values({k: bindparam(k) for k in row if k != "b_id"})
        .execution_options(synchronize_session=False)
    )


# A worker's numbers go into typed columns: one that does not fit would fail the
# whole batch, and every batch after it. What does not fit is dropped (None).
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
MAX_GPU_INDEX = 255
MAX_REAL = 1e300


def _count(value: Any, upper: int) -> int | None:
    """A whole number in 0..upper, or None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= upper:
        return value
    return None


def _real(value: Any) -> float | None:
    """A finite number a float column holds, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int) and abs(value) > MAX_REAL:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _system_value(field: str, value: Any) -> float | int | None:
    return _count(value, INT64_MAX) if field.endswith("_bytes") else _real(value)
