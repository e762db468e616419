"""Reading the action log of the workspace's instances (what each component did, when,
and how it ended) and the action type catalog that labels it. Rows are written where
the actions happen, through `inventiv_common.actions.log_action`; this module only
reads them. Nothing commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.errors import ApiError
from inventiv_common.db.models import ActionLog, ActionType


@dataclass(frozen=True)
class Filters:
    """Which entries of the workspace's log to read; every field narrows it."""

    instance_id: uuid.UUID | None = None
    action_type: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class Found:
    rows: list[ActionLog]
    by_type: dict[str, int]
    by_status: dict[str, int]


def _filtered(org_id: uuid.UUID, filters: Filters) -> Select[ActionLog]:
    if filters.since and filters.until and filters.since >= filters.until:
        raise ApiError(400, "bad_range", "since must be before until")
    query = select(ActionLog).where(ActionLog.organization_id == org_id)
    if filters.instance_id:
        query = query.where(ActionLog.instance_id == filters.instance_id)
    if filters.action_type:
        query = query.where(ActionLog.action_type == filters.action_type)
    if filters.status:
        query = query.where(ActionLog.status == filters.status)
    if filters.since:
        query = query.where(ActionLog.created_at >= filters.since)
    if filters.until:
        query = query.where(ActionLog.created_at < filters.until)
    return query


async def latest(
    *, session: AsyncSession, org_id: uuid.UUID, filters: Filters, limit: int
) -> list[ActionLog]:
    """The newest matching entries first."""
    query = _filtered(org_id, filters)
    rows = await session.scalars(query.order_by(ActionLog.created_at.desc()).limit(limit))
    return list(rows)


async def search(
    *, session: AsyncSession, org_id: uuid.UUID, filters: Filters, limit: int, offset: int
) -> Found:
    """A page of matching entries, newest first, with how many match by type and status."""
    query = _filtered(org_id, filters)
    matching = query.subquery()
    by_type: dict[str, int] = dict(
        (
            await session.execute(
                select(matching.c.action_type, func.count()).group_by(matching.c.action_type)
            )
        )
        .tuples()
        .all()
    )
    by_status: dict[str, int] = dict(
        (await session.execute(select(matching.c.status, func.count()).group_by(matching.c.status)))
        .tuples()
        .all()
    )
    rows = await session.scalars(
        query.order_by(ActionLog.created_at.desc(), ActionLog.id).limit(limit).offset(offset)
    )
    return Found(rows=list(rows), by_type=by_type, by_status=by_status)


async def action_types(*, session: AsyncSession) -> list[ActionType]:
    return list(
        await session.scalars(select(ActionType).order_by(ActionType.category, ActionType.code))
    )
