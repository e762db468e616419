"""A migrated database of its own per test, instances of known prices written
straight into it, and the finops loop driven by a clock the test moves."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from inventiv_common.bus import EventBus
from inventiv_common.db.engine import make_engine, make_session_factory
from inventiv_common.db.migrate import run_migrations
from inventiv_common.db.seed import apply_sql_file, default_catalog_seed_path
from inventiv_finops.loop import FinopsLoop

# A fixed start, far from any month or day boundary unless a test wants one.
T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


@dataclass
class Books:
    """The database, the finops loop and what the test put in."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    loop: FinopsLoop
    url: str
    provider_id: uuid.UUID = field(default_factory=uuid.uuid4)
    zone_id: uuid.UUID = field(default_factory=uuid.uuid4)

    async def sql(self, statement: str, **params: object) -> list:
        async with self.sessions() as session:
            result = await session.execute(text(statement), params)
            rows = list(result.all()) if result.returns_rows else []
            await session.commit()
            return rows

    async def scalar(self, statement: str, **params: object) -> object:
        return (await self.sql(statement, **params))[0][0]

    async def organization(self, name: str = "acme") -> uuid.UUID:
        org = uuid.uuid4()
        await self.sql(
            "INSERT INTO organizations (id, name, slug) VALUES (:id, :name, :slug)",
            id=org,
            name=name,
            slug=f"{name}-{org.hex[:6]}",
        )
        return org

    async def instance_type(self, code: str, price: str) -> uuid.UUID:
        type_id = uuid.uuid4()
        await self.sql(
            "INSERT INTO instance_types (id, provider_id, code, name, cost_per_hour_eur) "
            "VALUES (:id, :provider, :code, :code, :price)",
            id=type_id,
            provider=self.provider_id,
            code=code,
            price=Decimal(price),
        )
        return type_id

    async def instance(
        self,
        org: uuid.UUID,
        type_id: uuid.UUID,
        created: datetime,
        *,
        terminated: datetime | None = None,
        failed: datetime | None = None,
        status: str = "ready",
    ) -> uuid.UUID:
        instance_id = uuid.uuid4()
        await self.sql(
            "INSERT INTO instances (id, organization_id, provider_id, zone_id, "
            "instance_type_id, status, provider_created_at, terminated_at, failed_at) "
            "VALUES (:id, :org, :provider, :zone, :type, :status, :created, :terminated, "
            ":failed)",
            id=instance_id,
            org=org,
            provider=self.provider_id,
            zone=self.zone_id,
            type=type_id,
            status="terminated" if terminated else status,
            created=created,
            terminated=terminated,
            failed=failed,
        )
        return instance_id

    async def billed(self, instance_id: uuid.UUID) -> tuple[int, Decimal]:
        """(minutes, total) in the minute table for one instance."""
        rows = await self.sql(
            "SELECT count(*), COALESCE(sum(cost_eur), 0) FROM finops.cost_actual_minute "
            "WHERE instance_id = :id",
            id=instance_id,
        )
        return int(rows[0][0]), Decimal(rows[0][1])


@pytest.fixture
async def books(empty_database_url: str, bus: EventBus) -> AsyncIterator[Books]:
    engine = make_engine(empty_database_url, pool_size=4)
    await run_migrations(engine)
    await apply_sql_file(engine, default_catalog_seed_path())
    sessions = make_session_factory(engine)
    loop = FinopsLoop(sessions, bus, interval_s=60)
    async with sessions() as session:
        provider_id, zone_id = (
            await session.execute(
                text(
                    "SELECT p.id, z.id FROM providers p JOIN regions r ON r.provider_id = p.id "
                    "JOIN zones z ON z.region_id = r.id WHERE p.code = 'mock'"
                )
            )
        ).one()
    yield Books(engine, sessions, loop, empty_database_url, provider_id, zone_id)
    await engine.dispose()
