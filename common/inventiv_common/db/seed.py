"""Applying SQL seed files such as `seeds/catalog_seeds.sql`."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

# Serializes seeding between replicas booting at once ("seedcat" in ASCII).
SEED_LOCK_KEY = 0x73656564636174


def default_catalog_seed_path() -> Path:
    """SEED_CATALOG_PATH, or `seeds/catalog_seeds.sql` of the source tree."""
    override = os.environ.get("SEED_CATALOG_PATH")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3] / "seeds" / "catalog_seeds.sql"


async def apply_sql_file(engine: AsyncEngine, path: Path) -> None:
    """Run a multi-statement SQL file in one transaction: all of it applies, or none."""
    sql = path.read_text(encoding="utf-8")  # noqa: ASYNC240 - once at boot, a few KB
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SEED_LOCK_KEY})
        raw = await conn.get_raw_connection()
        # The simple-query protocol of the driver accepts several statements at once,
        # which SQLAlchemy's prepared-statement path does not.
        await raw.driver_connection.execute(sql)  # type: ignore[union-attr]
    log.info("seed applied", extra={"seed_file": str(path)})
