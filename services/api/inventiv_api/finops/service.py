"""Cost and usage reports of the caller's workspace, and its budget. Reads only, except
the budget writes; nothing here commits.

Every report ends at the billing watermark (the last minute the finops job billed),
so it shows complete minutes only and two reports of one moment agree.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Subquery, func, or_, select, tuple_, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.finops import schemas as out
from inventiv_api.finops.ranges import DAY, HOUR, MINUTE, floor_to, segments
from inventiv_common.db.models import (
    ApiKey,
    BillingProgress,
    BillingState,
    CostActualDay,
    CostActualHour,
    CostActualMinute,
    CostCumulativeMinute,
    CostForecastMinute,
    CostOrgBucket,
    Instance,
    InstanceType,
    Organization,
    Provider,
    Region,
    UsageHour,
    User,
    Zone,
)
from inventiv_common.finops import floor_minute, month_start, next_month, utcnow

TABLES: dict[str, Any] = {
    "minute": (CostActualMinute, CostActualMinute.bucket_minute),
    "hour": (CostActualHour, CostActualHour.bucket_hour),
    "day": (CostActualDay, CostActualDay.bucket_day),
}
DIMENSIONS = ("provider_id", "region_id", "instance_type_id", "instance_id", "organization_id")
ZERO = Decimal(0)
PER_1K = Decimal(1000)
QUANTUM = Decimal("1e-10")


async def as_of(session: AsyncSession) -> datetime:
    """The billing watermark; before the first pass, the current minute."""
    billed = await session.scalar(select(BillingProgress.billed_until))
    return billed or floor_minute(utcnow())


# -- the cost rows of a range --------------------------------------------------------
def _pieces(
    org_id: uuid.UUID,
    start: datetime,
    end: datetime,
    *,
    instances: bool = False,
    grain: str | None = None,
    coarsest: str = "day",
    instance_id: uuid.UUID | None = None,
) -> Subquery:
    """The workspace's cost over [start, end), summed inside each rollup it is read
    from, per `grain` bucket (column `at`) and, if asked, per instance (column
    `instance`). Workspace totals come from the organization's own minute/hour/day
    rows (a few per bucket); per-instance sums from the instance rollups."""
    selects = []
    for table_grain, lo, hi in segments(start, end, coarsest) or [("minute", start, start)]:
        if instances or instance_id is not None:
            table, bucket = TABLES[table_grain]
            conditions = [table.organization_id == org_id, bucket >= lo, bucket < hi]
            if instance_id is not None:
                conditions.append(table.instance_id == instance_id)
        else:
            table, bucket = CostOrgBucket, CostOrgBucket.bucket
            conditions = [
                table.organization_id == org_id,
                table.grain == table_grain,
                bucket >= lo,
                bucket < hi,
            ]
        keys: list[Any] = [table.instance_id.label("instance")] if instances else []
        if grain is not None:
            keys.append(func.date_trunc(grain, bucket, "UTC").label("at"))
        query = select(*keys, func.sum(table.cost_eur).label("cost")).where(*conditions)
        selects.append(query.group_by(*keys) if keys else query)
    return union_all(*selects).subquery()


async def total(
    session: AsyncSession, org_id: uuid.UUID, start: datetime, end: datetime
) -> Decimal:
    rows = _pieces(org_id, start, end)
    return Decimal(await session.scalar(select(func.coalesce(func.sum(rows.c.cost), 0))) or 0)


async def series(
    session: AsyncSession,
    org_id: uuid.UUID,
    start: datetime,
    end: datetime,
    grain: str,
    instance_id: uuid.UUID | None = None,
) -> list[out.Point]:
    rows = _pieces(org_id, start, end, grain=grain, coarsest=grain, instance_id=instance_id)
    found = await session.execute(
        select(rows.c.at, func.sum(rows.c.cost)).group_by(rows.c.at).order_by(rows.c.at)
    )
    return [out.Point(at=moment, cost_eur=cost) for moment, cost in found.tuples()]


def _spent_before(moment: datetime) -> Any:
    """An instance's cumulative cost of the minutes before `moment`: its latest
    cumulative row before it (one index seek), 0 if it had none yet."""
    cumulative = CostCumulativeMinute
    return func.coalesce(
        select(cumulative.cumulative_cost_eur)
        .where(cumulative.instance_id == Instance.id, cumulative.bucket_minute < moment)
        .order_by(cumulative.bucket_minute.desc())
        .limit(1)
        .correlate(Instance)
        .scalar_subquery(),
        0,
    )


def _cost_between(start: datetime, end: datetime) -> Any:
    """An instance's cost over [start, end): its cumulative cost at the end minus at
    the start (the cumulative rows are the running sum of its minutes, to the last
    decimal), two index seeks however long or ragged the range."""
    return (_spent_before(end) - _spent_before(start)).label("cost")


def _billed_between(org_id: uuid.UUID, start: datetime, end: datetime) -> list[ColumnElement[bool]]:
    """The workspace's instances that can have a billed minute in [start, end)."""
    ended = func.coalesce(Instance.terminated_at, Instance.failed_at)
    return [
        Instance.organization_id == org_id,
        Instance.provider_created_at < end,
        or_(ended.is_(None), ended > start - MINUTE),
    ]


async def instance_costs(
    session: AsyncSession, org_id: uuid.UUID, start: datetime, end: datetime
) -> dict[uuid.UUID | None, Decimal]:
    """What each instance of the workspace cost over [start, end) (those that cost)."""
    rows = (
        select(Instance.id, _cost_between(start, end))
        .where(*_billed_between(org_id, start, end))
        .subquery()
    )
    found = await session.execute(select(rows.c.id, rows.c.cost).where(rows.c.cost != 0))
    return {ident: cost for ident, cost in found.tuples()}


async def allocation(
    session: AsyncSession, org_id: uuid.UUID, start: datetime, end: datetime
) -> tuple[Decimal, dict[str, list[out.Share]]]:
    """The total and its split along every dimension. Each instance's cost over the
    range is its cumulative cost at the end minus at the start (the cumulative rows
    are the running sum of its minutes, to the last decimal): two index seeks per
    instance, however long or ragged the range. Then one pass (GROUPING SETS) over
    those rows; an instance belongs to one provider, region, type and organization."""
    per_instance = (
        select(
            Instance.id.label("instance_id"),
            Instance.provider_id,
            Zone.region_id,
            Instance.instance_type_id,
            Instance.organization_id,
            Instance.status,
            Provider.code.label("provider_code"),
            Provider.name.label("provider_name"),
            Region.code.label("region_code"),
            Region.name.label("region_name"),
            InstanceType.code.label("type_code"),
            InstanceType.name.label("type_name"),
            Organization.slug.label("organization_code"),
            Organization.name.label("organization_name"),
            _cost_between(start, end),
        )
        .join(Provider, Provider.id == Instance.provider_id)
        .join(Organization, Organization.id == Instance.organization_id)
        .outerjoin(Zone, Zone.id == Instance.zone_id)
        .outerjoin(Region, Region.id == Zone.region_id)
        .outerjoin(InstanceType, InstanceType.id == Instance.instance_type_id)
        .where(*_billed_between(org_id, start, end))
        .subquery()
    )
    c = per_instance.c
    # Each dimension with its code and name (an instance: its type's code, its status).
    sets = {
        "provider_id": (c.provider_id, c.provider_code, c.provider_name),
        "region_id": (c.region_id, c.region_code, c.region_name),
        "instance_type_id": (c.instance_type_id, c.type_code, c.type_name),
        "instance_id": (c.instance_id, c.type_code, c.status),
        "organization_id": (c.organization_id, c.organization_code, c.organization_name),
    }
    labelled = [column for triple in sets.values() for column in triple]
    found = await session.execute(
        select(
            *labelled,
            *(func.grouping(triple[0]) for triple in sets.values()),
            func.sum(c.cost),
        )
        .where(c.cost != 0)
        .group_by(func.grouping_sets(*(tuple_(*triple) for triple in sets.values())))
    )
    shares: dict[str, list[out.Share]] = {d: [] for d in DIMENSIONS}
    width = 3 * len(sets)
    for row in found.tuples():
        flags = row[width:-1]
        index = list(flags).index(0)  # the dimension this row is grouped by
        ident, code, name = row[3 * index : 3 * index + 3]
        shares[DIMENSIONS[index]].append(
            out.Share(id=ident, code=code, name=name, cost_eur=row[-1], share=None)
        )
    # Every row is the workspace's: its one organization slice is the total.
    grand = sum((s.cost_eur for s in shares["organization_id"]), ZERO)
    for slices in shares.values():
        slices.sort(key=lambda s: s.cost_eur, reverse=True)
        for piece in slices:
            piece.share = float(piece.cost_eur / grand) if grand else None
    return grand, shares


# -- reports ---------------------------------------------------------------------------
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


# -- token usage -------------------------------------------------------------------------
_USAGE_SETS = ("model_id", "api_key_id", "user_id", "instance_id")


async def usage(
    session: AsyncSession, org_id: uuid.UUID, start: datetime, end: datetime
) -> out.Usage:
    """Tokens and their price by model, API key, user and instance; with each
    instance's GPU cost over the same hours and what 1k of its tokens really cost."""
    u = UsageHour
    keys = [getattr(u, k) for k in _USAGE_SETS]
    found = await session.execute(
        select(
            *keys,
            func.max(u.model_name),
            *(func.grouping(k) for k in keys),
            func.sum(u.requests),
            func.sum(u.failed_requests),
            func.sum(u.prompt_tokens),
            func.sum(u.completion_tokens),
            func.sum(u.input_cost_eur),
            func.sum(u.output_cost_eur),
        )
        .where(u.organization_id == org_id, u.bucket_hour >= start, u.bucket_hour < end)
        .group_by(func.grouping_sets(*keys))
    )
    width = len(keys)
    lines: dict[str, list[out.UsageLine]] = {k: [] for k in _USAGE_SETS}
    totals: list[Any] = [0, 0, 0, 0, ZERO, ZERO]
    for row in found.tuples():
        ids, model_name, flags = row[:width], row[width], row[width + 1 : 2 * width + 1]
        numbers = list(row[2 * width + 1 :])
        key = _USAGE_SETS[list(flags).index(0)]  # the one this row is grouped by
        ident = ids[_USAGE_SETS.index(key)]
        lines[key].append(_usage_line(ident, model_name if key == "model_id" else None, numbers))
        if key == "model_id":  # the model slices add up to the whole
            totals = [a + (b or 0) for a, b in zip(totals, numbers, strict=True)]
    grand = _usage_line(None, None, totals)
    await _name_usage(session, lines)
    gpu = await instance_costs(session, org_id, start, end)
    by_instance = [
        out.InstanceUsage(
            **line.model_dump(),
            gpu_cost_eur=gpu.get(line.id, ZERO),
            gpu_cost_per_1k_tokens_eur=per_1k(gpu.get(line.id, ZERO), line.total_tokens),
        )
        for line in lines["instance_id"]
    ]
    # Instances that cost GPU time but served no token belong in the picture too.
    served = {line.id for line in by_instance}
    by_instance += [
        out.InstanceUsage(
            **_usage_line(instance_id, None, [0, 0, 0, 0, 0, 0]).model_dump(),
            gpu_cost_eur=cost,
            gpu_cost_per_1k_tokens_eur=None,
        )
        for instance_id, cost in gpu.items()
        if instance_id not in served
    ]
    return out.Usage(
        from_=start,
        to=end,
        total=grand,
        by_model=_by_tokens(lines["model_id"]),
        by_api_key=_by_tokens(lines["api_key_id"]),
        by_user=_by_tokens(lines["user_id"]),
        by_instance=_by_tokens(by_instance),
    )


def per_1k(cost: Decimal, tokens: int) -> Decimal | None:
    return (cost * PER_1K / tokens).quantize(QUANTUM) if tokens else None


def _usage_line(ident: uuid.UUID | None, name: str | None, numbers: Sequence[Any]) -> out.UsageLine:
    requests, failed, prompt, completion, input_cost, output_cost = numbers
    return out.UsageLine(
        id=ident,
        name=name,
        requests=int(requests or 0),
        failed_requests=int(failed or 0),
        prompt_tokens=int(prompt or 0),
        completion_tokens=int(completion or 0),
        total_tokens=int(prompt or 0) + int(completion or 0),
        input_cost_eur=Decimal(input_cost or 0),
        output_cost_eur=Decimal(output_cost or 0),
        token_cost_eur=Decimal(input_cost or 0) + Decimal(output_cost or 0),
    )


Line = TypeVar("Line", bound=out.UsageLine)


def _by_tokens(lines: Iterable[Line]) -> list[Line]:
    return sorted(lines, key=lambda line: line.total_tokens, reverse=True)


async def _name_usage(session: AsyncSession, lines: dict[str, list[out.UsageLine]]) -> None:
    for key, column, label in (
        ("api_key_id", ApiKey.id, ApiKey.name),
        ("user_id", User.id, User.username),
    ):
        ids = [line.id for line in lines[key] if line.id is not None]
        if not ids:
            continue
        found = await session.execute(select(column, label).where(column.in_(ids)))
        names = {ident: name for ident, name in found.tuples()}
        for line in lines[key]:
            line.name = names.get(line.id) if line.id else None


async def token_cost(
    session: AsyncSession,
    org_id: uuid.UUID,
    start: datetime,
    end: datetime,
    granularity: str,
    instance_id: uuid.UUID | None,
) -> list[out.TokenCostPoint]:
    """Each instance's GPU cost per 1k tokens served, per hour or day."""
    rows = _pieces(
        org_id,
        start,
        end,
        instances=True,
        grain=granularity,
        coarsest=granularity,
        instance_id=instance_id,
    )
    gpu = await session.execute(
        select(rows.c.instance, rows.c.at, func.sum(rows.c.cost)).group_by(
            rows.c.instance, rows.c.at
        )
    )
    usage_at = func.date_trunc(granularity, UsageHour.bucket_hour, "UTC")
    conditions: list[ColumnElement[bool]] = [
        UsageHour.organization_id == org_id,
        UsageHour.bucket_hour >= start,
        UsageHour.bucket_hour < end,
        UsageHour.instance_id.is_not(None),
    ]
    if instance_id is not None:
        conditions.append(UsageHour.instance_id == instance_id)
    tokens = await session.execute(
        select(
            UsageHour.instance_id,
            usage_at,
            func.sum(UsageHour.prompt_tokens + UsageHour.completion_tokens),
        )
        .where(*conditions)
        .group_by(UsageHour.instance_id, usage_at)
    )
    cells: dict[tuple[uuid.UUID, datetime], list[Any]] = {}
    for ident, moment, cost in gpu.tuples():
        cells.setdefault((ident, moment), [ZERO, 0])[0] = Decimal(cost)
    for ident, moment, count in tokens.tuples():
        cells.setdefault((ident, moment), [ZERO, 0])[1] = int(count)
    return [
        out.TokenCostPoint(
            instance_id=ident,
            at=moment,
            gpu_cost_eur=cost,
            tokens=count,
            gpu_cost_per_1k_tokens_eur=per_1k(cost, count),
        )
        for (ident, moment), (cost, count) in sorted(
            cells.items(), key=lambda c: (c[0][1], str(c[0][0]))
        )
    ]
