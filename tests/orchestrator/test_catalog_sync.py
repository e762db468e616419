"""The catalog sync when every orchestrator replica hears the same CMD:SYNC_CATALOG."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from inventiv_common.db.engine import make_session_factory
from inventiv_common.db.models import ActionLog
from inventiv_common.providers.base import CatalogType
from inventiv_common.providers.mock import MOCK_CATALOG
from inventiv_orchestrator.loops.catalog import CatalogLoop
from tests.orchestrator.contexts import loop_context
from tests.support.waiting import wait_until_async


class HeldCatalog:
    """A provider whose catalog API answers only when the test lets it (and counts its
    calls): the sync of one replica is under way for as long as the test needs."""

    code = "mock"

    def __init__(self) -> None:
        self.calls = 0
        self.answer = asyncio.Event()

    async def sync_catalog(self) -> list[CatalogType]:
        self.calls += 1
        await self.answer.wait()
        return list(MOCK_CATALOG)


async def test_replicas_hearing_one_request_sync_once_and_log_once(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    async with sessions() as session:
        org = await session.scalar(
            text("INSERT INTO organizations (name, slug) VALUES ('Cat', :slug) RETURNING id"),
            {"slug": f"cat-{uuid.uuid4().hex[:8]}"},
        )
        await session.commit()
    provider = HeldCatalog()
    first, second = (
        CatalogLoop(loop_context(sessions, {"mock": provider}), 3600) for _ in range(2)
    )
    for replica in (first, second):
        replica.request(org)
    syncing = asyncio.create_task(first.run_once())
    try:

        async def first_is_syncing() -> bool:
            return provider.calls == 1

        await wait_until_async(first_is_syncing, 30, "the first replica asking the provider")
        # The second replica hears the same request while the first one's sync is under
        # way: it leaves the sync to that one, and returns without waiting for it.
        assert await asyncio.wait_for(second.run_once(), 30) == 0
    finally:
        provider.answer.set()
        await asyncio.wait_for(syncing, 30)

    assert provider.calls == 1  # the other replica found the sync under way
    async with sessions() as session:
        logged = await session.scalar(
            select(func.count()).where(
                ActionLog.organization_id == org, ActionLog.action_type == "catalog.sync"
            )
        )
    assert logged == 1
