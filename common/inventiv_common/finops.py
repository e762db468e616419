"""Cost facts the api and the finops service both need: minute and month boundaries,
and what an organization has spent on GPUs this month (its budget's measure)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_common.db.models import Budget, CostActualDay

EVT_INFERENCE_USAGE_RECORDED = "EVT:INFERENCE_USAGE_RECORDED"
EVT_COSTS_COMPUTED = "EVT:COSTS_COMPUTED"
EVT_BUDGET_THRESHOLD_REACHED = "EVT:BUDGET_THRESHOLD_REACHED"
EVT_BUDGET_CAP_REACHED = "EVT:BUDGET_CAP_REACHED"


def utcnow() -> datetime:
    return datetime.now(UTC)


def floor_minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def month_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(start: datetime) -> datetime:
    return (start + timedelta(days=32)).replace(day=1)


async def month_spend(session: AsyncSession, organization_id: uuid.UUID, now: datetime) -> Decimal:
    """The GPU cost billed to the organization's instances since the month began (UTC)."""
    start = month_start(now)
    spent = await session.scalar(
        select(func.coalesce(func.sum(CostActualDay.cost_eur), 0)).where(
            CostActualDay.organization_id == organization_id,
            CostActualDay.bucket_day >= start,
            CostActualDay.bucket_day < next_month(start),
        )
    )
    return Decimal(spent or 0)


async def cap_reached(
    session: AsyncSession, organization_id: uuid.UUID, now: datetime
) -> tuple[Budget, Decimal] | None:
    """(budget, spent) when the organization has a hard cap and has reached it."""
    budget = await session.get(Budget, organization_id)
    if budget is None or not budget.hard_cap:
        return None
    spent = await month_spend(session, organization_id, now)
    return (budget, spent) if spent >= budget.monthly_budget_eur else None
