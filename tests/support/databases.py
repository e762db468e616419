"""Throwaway PostgreSQL databases on the shared server, one per test session."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg

# The shared server of dev and CI machines; override with the usual variables.
ADMIN_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL",
    os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
)


def database_url_for(name: str) -> str:
    parts = urlsplit(ADMIN_DATABASE_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def create_database(prefix: str = "inventiv_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(_asyncpg_dsn(ADMIN_DATABASE_URL))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return database_url_for(name)


async def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(_asyncpg_dsn(ADMIN_DATABASE_URL))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def create_migrated_database(prefix: str = "inventiv_test") -> str:
    """A new database at the head revision, with the catalog seed."""
    from inventiv_common.db.engine import make_engine
    from inventiv_common.db.migrate import run_migrations
    from inventiv_common.db.seed import apply_sql_file, default_catalog_seed_path

    url = await create_database(prefix)
    engine = make_engine(url, pool_size=2)
    try:
        await run_migrations(engine)
        await apply_sql_file(engine, default_catalog_seed_path())
    finally:
        await engine.dispose()
    return url
