"""Applying migrations, safely from several processes booting at once."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

# Any fixed 64-bit number works; this one is "inventiv" in ASCII.
MIGRATION_LOCK_KEY = 0x696E76656E746976


def migrations_dir() -> Path:
    """`migrations/` of the source tree, or INVENTIV_MIGRATIONS_DIR (container images)."""
    override = os.environ.get("INVENTIV_MIGRATIONS_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3] / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if database_url:
        # Alembic's config is an .ini parser: a literal % must be doubled.
        cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection, target: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, target)


def _downgrade(connection: Connection, target: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, target)


async def run_migrations(engine: AsyncEngine, target: str = "head") -> str | None:
    """Upgrade under a transaction-scoped advisory lock; returns the revision reached.

    A second process booting at the same moment waits on the lock, then finds the
    schema already at head and does nothing.
    """
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        before = await conn.run_sync(_current_revision)
        await conn.run_sync(_upgrade, target)
        after = await conn.run_sync(_current_revision)
    if before != after:
        log.info("database migrated", extra={"from_revision": before, "to_revision": after})
    return after


async def run_downgrade(engine: AsyncEngine, target: str = "base") -> None:
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        await conn.run_sync(_downgrade, target)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current_revision)


async def stored_revision(engine: AsyncEngine) -> str | None:
    """The revision recorded in the database, read with one plain query (cheap enough
    for readiness probes); None when the schema was never migrated."""
    async with engine.connect() as conn:
        try:
            return await conn.scalar(text("SELECT version_num FROM alembic_version"))
        except ProgrammingError:
            return None
