"""The gateway's meter against real PostgreSQL and Redis: batches written with their
running totals, kept while the database is unreachable, never counted twice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from inventiv_api.gateway.metering import Meter, Usage
from inventiv_common.bus import EventBus
from inventiv_common.db.engine import make_engine, make_session_factory
from inventiv_common.db.models import InferenceUsage, Instance, InstanceRequestMetrics
from inventiv_common.net import free_port
from tests.api.test_gateway_routing import Fleet
from tests.support.mock_engine import MOCK_MODEL


def usage(org: uuid.UUID, instance: uuid.UUID, model: uuid.UUID, *, ok: bool = True) -> Usage:
    return Usage(
        request_id=uuid.uuid4().hex,
        occurred_at=datetime.now(UTC),
        organization_id=org,
        user_id=None,
        api_key_id=None,
        instance_id=instance,
        model_id=model,
        model_name=MOCK_MODEL,
        endpoint="chat/completions",
        stream=False,
        prompt_tokens=3,
        completion_tokens=4,
        time_to_first_token_ms=1,
        latency_ms=2,
        status_code=200 if ok else 500,
        status="success" if ok else "error",
    )


async def test_batches_survive_an_unreachable_database_and_never_count_twice(
    engine: AsyncEngine, bus: EventBus
) -> None:
    fleet = Fleet(engine)
    org = await fleet.organization()
    instance = await fleet.instance(org)
    async with fleet.sessions() as session:
        model = await session.scalar(select(Instance.model_id).where(Instance.id == instance))
    assert model is not None
    records = [usage(org, instance, model) for _ in range(4)] + [
        usage(org, instance, model, ok=False)
    ]

    nowhere = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/none", pool_size=1)
    meter = Meter(make_session_factory(nowhere), bus)
    for record in records:
        meter.record(record)
    assert await meter.flush() == 0  # the database is unreachable: nothing is lost
    assert len(meter.pending) == 5
    await nowhere.dispose()

    meter.session_factory = fleet.sessions
    assert await meter.flush() == 5
    assert not meter.pending
    # The same records again (a retry whose first commit went through unseen).
    for record in records:
        meter.record(record)
    await meter.flush()

    async with fleet.sessions() as session:
        stored = await session.scalar(
            select(func.count())
            .select_from(InferenceUsage)
            .where(InferenceUsage.instance_id == instance)
        )
        totals = await session.get(InstanceRequestMetrics, instance)
    assert stored == 5
    assert totals is not None
    assert (totals.total_requests, totals.successful_requests, totals.failed_requests) == (5, 4, 1)
    assert (totals.input_tokens, totals.output_tokens, totals.total_tokens) == (15, 20, 35)
