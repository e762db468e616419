"""Fixtures against the real PostgreSQL and Redis named by DATABASE_URL / REDIS_URL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from inventiv_common.bus import EventBus
from inventiv_common.db.engine import make_engine
from tests.support.databases import create_database, create_migrated_database, drop_database
from tests.support.redis_servers import REDIS_URL


@pytest.fixture
async def empty_database_url() -> AsyncIterator[str]:
    """A new, empty database, dropped after the test."""
    url = await create_database()
    yield url
    await drop_database(url)


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    """One database for the run, migrated to head and seeded."""
    url = await create_migrated_database()
    yield url
    await drop_database(url)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url, pool_size=2)
    yield eng
    await eng.dispose()


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
def channel_prefix() -> str:
    """Keeps this test's bus traffic apart from any other user of the shared Redis."""
    return f"test-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
async def bus(redis_url: str, channel_prefix: str) -> AsyncIterator[EventBus]:
    event_bus = EventBus(redis_url, channel_prefix=channel_prefix)
    yield event_bus
    await event_bus.close()
