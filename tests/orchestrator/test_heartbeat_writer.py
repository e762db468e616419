"""The heartbeat writer is a Loop: a pass without PostgreSQL keeps the beats and says
why in one line; the next pass with PostgreSQL writes them."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from inventiv_common.db.engine import make_engine, make_session_factory
from inventiv_common.db.models import Instance
from inventiv_common.net import free_port
from inventiv_orchestrator.workers.heartbeats import HeartbeatBuffer, HeartbeatWriter
from tests.support.instances import installing_instance


async def test_beats_survive_a_pass_without_postgresql(engine: AsyncEngine) -> None:
    instance_id, _ = await installing_instance(engine)
    buffer = HeartbeatBuffer()
    told: list[int] = []
    dead = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    writer = HeartbeatWriter(
        buffer, make_session_factory(dead), 0.05, on_phase_change=lambda: told.append(1)
    )
    buffer.add(instance_id, {"phase": "engine_starting", "engine": {"healthy": False}})
    await writer.run(asyncio.Event(), passes=1)
    assert writer.last_error is not None
    assert writer.last_error.startswith("heartbeats not written, will retry")
    assert told == [1]  # the phase change is news even when the write failed
    assert instance_id in buffer.latest  # kept for the next pass

    writer.session_factory = make_session_factory(engine)
    await writer.run(asyncio.Event(), passes=2)
    assert writer.last_error is None
    async with engine.connect() as conn:
        phase = await conn.scalar(select(Instance.worker_phase).where(Instance.id == instance_id))
    assert phase == "engine_starting"
    await dead.dispose()


async def test_numbers_no_column_holds_never_block_the_batch(engine: AsyncEngine) -> None:
    """A worker's beat with numbers past 64 bits, NaN, strings and repeated GPUs is
    written with what fits, and the beats around it are written too."""
    hostile, healthy = await installing_instance(engine), await installing_instance(engine)
    buffer = HeartbeatBuffer()
    buffer.add(
        hostile[0],
        {
            "phase": "ready",
            "engine": {"healthy": True, "requests_waiting": 10**30},
            "system": {"cpu_pct": float("nan"), "memory_used_bytes": 2**70, "load_1m": 10**400},
            "gpus": [
                {"gpu_index": 0, "utilization_pct": float("inf"), "power_w": "lots"},
                {"gpu_index": 0, "utilization_pct": 50},  # the same GPU twice
                {"gpu_index": 2**40, "utilization_pct": 10},
                {"gpu_index": True, "utilization_pct": 10},
            ],
        },
    )
    buffer.add(healthy[0], {"phase": "ready", "engine": {"healthy": True, "requests_waiting": 3}})
    assert await buffer.write(make_session_factory(engine)) > 0
    async with engine.connect() as conn:
        rows = dict(
            (
                await conn.execute(
                    select(Instance.id, Instance.worker_queue_depth).where(
                        Instance.id.in_([hostile[0], healthy[0]])
                    )
                )
            ).all()
        )
    assert rows == {hostile[0]: 0, healthy[0]: 3}
