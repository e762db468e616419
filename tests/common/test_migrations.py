"""Migrations: the round trip, agreement with the models, concurrent boots."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from inventiv_common.db.engine import make_engine
from inventiv_common.db.migrate import (
    current_revision,
    head_revision,
    run_downgrade,
    run_migrations,
    stored_revision,
)
from inventiv_common.db.models import Base

TABLES_QUERY = text(
    "SELECT table_schema || '.' || table_name FROM information_schema.tables "
    "WHERE table_schema IN ('public', 'finops') AND table_name <> 'alembic_version' "
    "ORDER BY 1"
)


def _expected_tables() -> list[str]:
    return sorted(name if "." in name else f"public.{name}" for name in Base.metadata.tables)


async def test_upgrade_downgrade_upgrade_round_trip(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url, pool_size=1)
    try:
        assert await run_migrations(engine) == head_revision()
        async with engine.connect() as conn:
            assert list((await conn.scalars(TABLES_QUERY)).all()) == _expected_tables()

        await run_downgrade(engine, "base")
        assert await current_revision(engine) is None
        async with engine.connect() as conn:
            assert (await conn.scalars(TABLES_QUERY)).all() == []
            schemas = await conn.scalars(
                text("SELECT nspname FROM pg_namespace WHERE nspname = 'finops'")
            )
            assert schemas.all() == []

        assert await run_migrations(engine) == head_revision()
        async with engine.connect() as conn:
            assert list((await conn.scalars(TABLES_QUERY)).all()) == _expected_tables()
    finally:
        await engine.dispose()


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection,
        opts={
            "include_schemas": True,
            "include_name": lambda name, type_, _parents: (
                type_ != "schema" or name in (None, "finops")
            ),
            "compare_type": True,
        },
    )
    return list(compare_metadata(context, Base.metadata))


async def test_migrations_match_the_models(database_url: str) -> None:
    """A model changed without a migration (or the reverse) fails here."""
    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_concurrent_migrations_take_turns(empty_database_url: str) -> None:
    engines = [make_engine(empty_database_url, pool_size=1) for _ in range(3)]
    try:
        results = await asyncio.gather(*(run_migrations(e) for e in engines))
        assert results == [head_revision()] * 3
        assert await stored_revision(engines[0]) == head_revision()
    finally:
        for e in engines:
            await e.dispose()


async def test_stored_revision_of_an_unmigrated_database(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url, pool_size=1)
    try:
        assert await stored_revision(engine) is None
    finally:
        await engine.dispose()


async def test_every_action_type_code_has_its_catalog_row(engine: object) -> None:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from inventiv_common import actions

    assert isinstance(engine, AsyncEngine)
    async with engine.connect() as conn:
        codes = set((await conn.scalars(text("SELECT code FROM action_types"))).all())
    assert actions.ALL and codes >= actions.ALL
