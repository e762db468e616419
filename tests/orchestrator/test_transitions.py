"""The one transition function against the real database."""

from __future__ import annotations

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from inventiv_common.db.engine import make_session_factory
from inventiv_common.db.models import Instance
from inventiv_common.lifecycle import InstanceStatus
from inventiv_orchestrator.transitions import transition
from tests.support.instances import installing_instance


async def test_instances_moved_together_are_written_in_one_statement(
    engine: AsyncEngine,
) -> None:
    """transition() under the row lock: the version counts the change, and the UPDATEs
    of a batch go out as one executemany, not a round trip per instance."""
    ids = [(await installing_instance(engine))[0] for _ in range(3)]
    updates: list[bool] = []

    def record(_conn: object, _cursor: object, statement: str, *args: object) -> None:
        if statement.startswith("UPDATE instances"):
            updates.append(bool(args[-1]))  # executemany

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        async with make_session_factory(engine)() as session:
            instances = (
                await session.scalars(
                    select(Instance).where(Instance.id.in_(ids)).with_for_update(key_share=True)
                )
            ).all()
            before = {i.id: i.version for i in instances}
            for instance in instances:
                transition(session, instance, InstanceStatus.starting, reason="worker registered")
            await session.commit()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert updates == [True]
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(Instance.id, Instance.status, Instance.version).where(Instance.id.in_(ids))
            )
        ).all()
    assert {(r.status, r.version - before[r.id]) for r in rows} == {("starting", 1)}
