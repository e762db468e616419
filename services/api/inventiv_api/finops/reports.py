"""The cost reports of the caller's workspace: the summary of a range, the last minute
to year at a fitting grain, the running total, where it stands now, and the forecast
at the current burn rate. Reads only; each ends at the billing watermark."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.finops import schemas as out
from inventiv_api.finops.costs import QUANTUM, ZERO, allocation, as_of, series, total
from inventiv_api.finops.ranges import DAY, HOUR, MINUTE, floor_to
from inventiv_common.db.models import (
    BillingState,
    CostCumulativeMinute,
    CostForecastMinute,
    Instance,
)
from inventiv_common.finops import month_start, next_month


async def summary(
    session: AsyncSession, org_id: uuid.UUID, start: datetime, end: datetime
) -> out.CostSummary:
    grand, shares = await allocation(session, org_id, start, end)
    return out.CostSummary(
        from_=start,
        to=end,
        as_of=await as_of(session),
        total_eur=grand,
        by_provider=shares["provider_id"],
        by_region=shares["region_id"],
        by_instance_type=shares["instance_type_id"],
        by_instance=shares["instance_id"],
        by_organization=shares["organization_id"],
    )


async def cost_window(
    session: AsyncSession, org_id: uuid.UUID, name: str, length: timedelta, grain: str
) -> out.CostWindow:
    end = await as_of(session)
    start = end - length
    grand, shares = await allocation(session, org_id, start, end)
    return out.CostWindow(
        window=name,
        grain=grain,
        from_=start,
        to=end,
        total_eur=grand,
        series=await series(session, org_id, start, end, grain),
        by_instance_type=shares["instance_type_id"],
        by_instance=shares["instance_id"],
    )


async def cumulative_series(
    session: AsyncSession,
    org_id: uuid.UUID,
    start: datetime,
    end: datetime,
    instance_id: uuid.UUID | None,
) -> list[out.Point]:
    """Spent since the beginning, at the end of each minute of [start, end)."""
    if instance_id is not None:
        # The instance's own running sum, stored minute by minute.
        cumulative = CostCumulativeMinute
        found = await session.execute(
            select(cumulative.bucket_minute, cumulative.cumulative_cost_eur)
            .where(
                cumulative.organization_id == org_id,
                cumulative.instance_id == instance_id,
                cumulative.bucket_minute >= start,
                cumulative.bucket_minute < end,
            )
            .order_by(cumulative.bucket_minute)
        )
        return [out.Point(at=moment, cost_eur=cost) for moment, cost in found.tuples()]
    before = await total(session, org_id, datetime(2000, 1, 1, tzinfo=start.tzinfo), start)
    points, running = [], before
    for point in await series(session, org_id, start, end, "minute"):
        running += point.cost_eur
        points.append(out.Point(at=point.at, cost_eur=running))
    return points


async def current(session: AsyncSession, org_id: uuid.UUID) -> out.CurrentCost:
    end = await as_of(session)
    burn, running = await _burn(session, org_id, end)
    all_time = await session.scalar(
        select(func.coalesce(func.sum(BillingState.cumulative_cost_eur), 0))
        .join(Instance, Instance.id == BillingState.instance_id)
        .where(Instance.organization_id == org_id)
    )
    return out.CurrentCost(
        as_of=end,
        running_instances=running,
        burn_rate_eur_per_hour=burn,
        last_minute_eur=await total(session, org_id, end - MINUTE, end),
        last_hour_eur=await total(session, org_id, end - HOUR, end),
        today_eur=await total(session, org_id, floor_to(end - MINUTE, DAY), end),
        month_to_date_eur=await total(session, org_id, month_start(end - MINUTE), end),
        all_time_eur=Decimal(all_time or 0),
    )


async def _burn(session: AsyncSession, org_id: uuid.UUID, end: datetime) -> tuple[Decimal, int]:
    """The hourly burn of the instances billed in the last billed minute, and how many."""
    burn, count = (
        await session.execute(
            select(
                func.coalesce(func.sum(CostForecastMinute.burn_rate_eur_per_hour), 0),
                func.count(),
            ).where(
                CostForecastMinute.organization_id == org_id,
                CostForecastMinute.bucket_minute == end - MINUTE,
            )
        )
    ).one()
    return Decimal(burn), int(count)


async def forecast(session: AsyncSession, org_id: uuid.UUID) -> out.Forecast:
    end = await as_of(session)
    found = await session.execute(
        select(CostForecastMinute.instance_id, CostForecastMinute.burn_rate_eur_per_hour)
        .where(
            CostForecastMinute.organization_id == org_id,
            CostForecastMinute.bucket_minute == end - MINUTE,
        )
        .order_by(CostForecastMinute.burn_rate_eur_per_hour.desc())
    )
    by_instance = [
        out.InstanceForecast(instance_id=i, burn_rate_eur_per_hour=b) for i, b in found.tuples()
    ]
    burn = sum((f.burn_rate_eur_per_hour for f in by_instance), ZERO)
    month = month_start(end - MINUTE)
    to_date = await total(session, org_id, month, end)
    hours_left = Decimal((next_month(month) - end).total_seconds()) / 3600
    return out.Forecast(
        as_of=end,
        burn_rate_eur_per_hour=burn,
        forecast_eur_1h=burn,
        forecast_eur_1d=burn * 24,
        forecast_eur_30d=burn * 720,
        forecast_eur_365d=burn * 8760,
        month_to_date_eur=to_date,
        month_end_projection_eur=(to_date + burn * hours_left).quantize(QUANTUM),
        by_instance=by_instance,
    )
