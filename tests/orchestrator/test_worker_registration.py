"""Worker registration against the real database: it never queues behind the
lifecycle's row locks, two registrations of one instance leave one live token, and
what the worker reported reaches the instance through the heartbeat writer."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from inventiv_common.agent_checksum import expected_agent_checksum
from inventiv_common.db.engine import make_session_factory
from inventiv_common.db.models import ActionLog, Instance, WorkerAuthToken
from inventiv_orchestrator.settings import OrchestratorSettings
from inventiv_orchestrator.workers import service
from inventiv_orchestrator.workers.heartbeats import HeartbeatBuffer
from tests.support.instances import installing_instance

SETTINGS = OrchestratorSettings(
    DATABASE_URL="postgresql://unused@127.0.0.1/unused", REDIS_URL="redis://127.0.0.1:6379/0"
)


async def _register(
    engine: AsyncEngine, instance_id: uuid.UUID, secret: str
) -> service.Registration:
    async with make_session_factory(engine)() as session:
        registration = await service.register(
            session=session,
            settings=SETTINGS,
            bootstrap_secret=secret,
            body={
                "instance_id": str(instance_id),
                "agent_version": "1.2.3",
                "agent_checksum": expected_agent_checksum(),
            },
        )
        await session.commit()
    return registration


async def test_registration_does_not_wait_for_a_lifecycle_claim(engine: AsyncEngine) -> None:
    instance_id, secret = await installing_instance(engine)
    async with engine.connect() as holder:
        # What a lifecycle loop holds while it moves a batch on.
        await holder.execute(
            text("SELECT id FROM instances WHERE id = :id FOR NO KEY UPDATE"), {"id": instance_id}
        )
        # Queued behind the held row it would wait for ever: any bound tells, a wide one
        # keeps a loaded machine from failing it.
        registration = await asyncio.wait_for(_register(engine, instance_id, secret), 60)
        await holder.rollback()
    assert registration.instance_id == instance_id and registration.token.startswith("wt_")
    assert registration.facts == {
        "worker_agent_version": "1.2.3",
        "worker_agent_checksum": expected_agent_checksum(),
        "worker_version_mismatch": False,
        "worker_status": "registered",
    }
    async with engine.connect() as conn:
        logged = await conn.scalar(
            select(func.count())
            .select_from(ActionLog)
            .where(
                ActionLog.instance_id == instance_id, ActionLog.action_type == "worker.registered"
            )
        )
        row = (
            await conn.execute(
                select(Instance.worker_status, Instance.worker_agent_version).where(
                    Instance.id == instance_id
                )
            )
        ).one()
    assert logged == 1
    # The instance row was not written by the request...
    assert tuple(row) == (None, None)
    # ...but by the heartbeat writer, which applies what the worker reported.
    writer = HeartbeatBuffer()
    assert registration.facts is not None
    writer.registered(instance_id, registration.facts)
    assert writer.urgent.is_set()
    assert await writer.flush(make_session_factory(engine)) == 1
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(Instance.worker_status, Instance.worker_agent_version).where(
                    Instance.id == instance_id
                )
            )
        ).one()
    assert tuple(row) == ("registered", "1.2.3")


async def test_two_registrations_of_one_instance_leave_one_live_token(engine: AsyncEngine) -> None:
    instance_id, secret = await installing_instance(engine)
    first, second = await asyncio.gather(
        _register(engine, instance_id, secret), _register(engine, instance_id, secret)
    )
    assert first.token != second.token
    async with engine.connect() as conn:
        live = (
            (
                await conn.execute(
                    select(WorkerAuthToken.token_prefix).where(
                        WorkerAuthToken.instance_id == instance_id,
                        WorkerAuthToken.revoked_at.is_(None),
                    )
                )
            )
            .scalars()
            .all()
        )
        issued = await conn.scalar(
            select(func.count())
            .select_from(WorkerAuthToken)
            .where(WorkerAuthToken.instance_id == instance_id)
        )
    assert issued == 2 and len(live) == 1
    assert live[0] in (first.token[:10], second.token[:10])
    # The first found nothing to revoke, the second revoked the first's token: only a
    # revocation is announced to the other replicas.
    assert sorted(r.revoked_tokens for r in (first, second)) == [0, 1]
