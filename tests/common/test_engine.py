"""The connection pool against the real PostgreSQL: a pooled connection that died
while idle is replaced before anyone uses it."""

from __future__ import annotations

import traceback

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from inventiv_common.db import engine as engine_module
from inventiv_common.db.engine import make_engine


async def test_a_connection_that_died_while_idle_is_replaced_unseen(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "PING_IF_IDLE_S", 0.0)  # every reuse counts as idle
    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            first = await conn.scalar(text("SELECT pg_backend_pid()"))
        # What a database restart does to the pooled connection.
        killer = await asyncpg.connect(database_url)
        try:
            assert await killer.fetchval("SELECT pg_terminate_backend($1)", first)
        finally:
            await killer.close()
        async with engine.connect() as conn:
            second = await conn.scalar(text("SELECT pg_backend_pid()"))
        assert second != first
    finally:
        await engine.dispose()


async def test_only_a_connection_idle_for_a_while_is_pinged(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(database_url, pool_size=1)
    pings: list[object] = []
    dialect = engine.sync_engine.dialect
    real_ping = dialect.do_ping

    def counting_ping(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counting_ping)
    # "At once" and "a while" are the threshold's two sides; setting it, rather than
    # relying on how fast this machine reuses a connection, keeps load out of the result.
    monkeypatch.setattr(engine_module, "PING_IF_IDLE_S", 3600.0)
    try:
        for _ in range(3):  # reused at once: a busy pool pays no round trip
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        assert pings == []
        monkeypatch.setattr(engine_module, "PING_IF_IDLE_S", 0.0)
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        assert len(pings) == 1
    finally:
        await engine.dispose()


async def test_a_failed_statement_never_shows_its_values(engine: AsyncEngine) -> None:
    """What an unexpected error logs (its text and traceback) names the statement, not
    the values bound to it: those are key hashes, emails, tokens."""
    secret = "ia_0123456789abcdef-never-in-a-log"
    with pytest.raises(DBAPIError) as caught:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1 / 0 WHERE :value <> ''"), {"value": secret})
    logged = "".join(traceback.format_exception(caught.value))
    assert "division by zero" in logged
    assert secret not in logged
