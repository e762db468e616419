"""Alembic environment: async engine, or a connection handed in by `run_migrations`."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from inventiv_common.db.engine import make_engine
from inventiv_common.db.models import Base

config = context.config
target_metadata = Base.metadata


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    # Autogenerate compares our two schemas only, never TimescaleDB's own.
    if type_ == "schema":
        return name in (None, "finops")
    return True


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_schemas=True,
        include_name=_include_name,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = make_engine(url, pool_size=1, app_name="inventiv-migrations")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: set DATABASE_URL or use `inventiv migrate`")
    asyncio.run(_run_async(url))


if context.is_offline_mode():
    raise RuntimeError("offline SQL generation is not supported; migrate a live database")
run_online()
