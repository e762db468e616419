"""The orchestrator's loops (the shape is `inventiv_common.loops.Loop`) and how they
claim instances without stepping on another orchestrator."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_common.db.models import Instance
from inventiv_common.loops import Loop

__all__ = ["Loop", "claim", "claim_one"]

log = logging.getLogger(__name__)


async def claim(
    session: AsyncSession, conditions: Sequence[ColumnElement[bool]], limit: int
) -> list[Instance]:
    """Lock up to `limit` matching instances, least recently processed first; others
    skip locked rows, so two orchestrators never work on one instance at once. Rows
    already in the session are refreshed (a claim after a commit sees them anew).

    FOR NO KEY UPDATE, not FOR UPDATE: rows that reference an instance (action logs,
    worker tokens, volumes, usage records) take a key-share lock on it when inserted,
    which FOR UPDATE would make wait for the whole claim. The lifecycle never changes
    an instance's key, so the weaker lock excludes everything it must."""
    return list(
        (
            await session.scalars(
                select(Instance)
                .where(*conditions)
                .order_by(Instance.last_processed_at.asc().nulls_first(), Instance.created_at)
                .limit(limit)
                .with_for_update(skip_locked=True, key_share=True)
                .execution_options(populate_existing=True)
            )
        ).all()
    )


async def claim_one(
    session: AsyncSession, conditions: Sequence[ColumnElement[bool]]
) -> Instance | None:
    claimed = await claim(session, conditions, 1)
    return claimed[0] if claimed else None
