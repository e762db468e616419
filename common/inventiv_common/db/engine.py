"""Async engine and session factory; one engine per process, built by the app factory."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from inventiv_common.settings import async_database_url

# A pooled connection used this recently is taken as alive without a ping.
PING_IF_IDLE_S = 2.0


def make_engine(
    database_url: str, *, pool_size: int = 10, app_name: str = "inventiv"
) -> AsyncEngine:
    engine = create_async_engine(
        async_database_url(database_url),
        # A fixed-size pool: under a burst, requests wait for a connection instead of
        # opening and closing extra ones (each a TCP and TLS handshake) over and over.
        pool_size=pool_size,
        max_overflow=0,
        # The name shows in pg_stat_activity, which is where an operator looks first.
        connect_args={"server_settings": {"application_name": app_name}},
        # An error's text names the statement, never its values: a failed statement
        # logged with its parameters would write key hashes and secrets to the logs.
        hide_parameters=True,
    )
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: AsyncEngine) -> None:
    """Ping a pooled connection before use only when it sat idle for a while.

    A connection left in the pool across a database restart is dead, hence the ping;
    but pinging on every checkout (pool_pre_ping) costs a round trip and half a
    millisecond of CPU per transaction, the price of a whole statement, and a
    connection checked in a moment ago is as good as the server it talked to. One
    that turns out dead anyway fails its statement, and SQLAlchemy then replaces
    every connection of the pool that predates the failure."""
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _checked_in(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(
        dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        idle_since = record.info.get("checked_in_at")
        if idle_since is None or time.monotonic() - idle_since < PING_IF_IDLE_S:
            return  # new, or used a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool drops this connection and checks out a fresh one.
            raise DisconnectionError("stale pooled connection") from exc


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
