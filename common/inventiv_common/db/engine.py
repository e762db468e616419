"""Async engine and session factory; one engine per process, built by the app factory."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from inventiv_common.settings import async_database_url


def make_engine(
    database_url: str, *, pool_size: int = 10, app_name: str = "inventiv"
) -> AsyncEngine:
    return create_async_engine(
        async_database_url(database_url),
        # A fixed-size pool: under a burst, requests wait for a connection instead of
        # opening and closing extra ones (each a TCP and TLS handshake) over and over.
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=True,
        # The name shows in pg_stat_activity, which is where an operator looks first.
        connect_args={"server_settings": {"application_name": app_name}},
    )


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
