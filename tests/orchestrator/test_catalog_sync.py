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


class SlowCatalog:
    """A provider whose catalog API takes a while to answer (and counts its calls)."""

    code = "mock"

    def __init__(self) -> None:
        self.calls = 0

    async def sync_catalog(self) -> list[CatalogType]:
        self.calls += 1
        await asyncio.sleep(0.3)
        return list(MOCK_CATALOG)


async def test_replicas_hearing_one_request_sync_once_and_log_once(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    async with sessions() as session:
        org = await session.scalar(
            text("INSERT INTO organizations (name, slug) VALUES ('Cat', :slug) RETURNING id"),
            {"slug": f"cat-{uuid.uuid4().hex[:8]}"},
        )
        await session.commit()
    provider = SlowCatalog()
    replicas = [CatalogLoop(loop_context(sessions, {"mock": provider}), 3600) for _ in range(2)]
    for replica in replicas:
        replica.request(org)
    await asyncio.gather(*(replica.run_once() for replica in replicas))

    assert provider.calls == 1  # the other replica found the sync under way
    async with sessions() as session:
        logged = await session.scalar(
            select(func.count()).where(
                ActionLog.organization_id == org, ActionLog.action_type == "catalog.sync"
            )
        )
    assert logged == 1
