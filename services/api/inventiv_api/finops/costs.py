"""The workspace's cost over a range, read from the billing rollups: its total, its
series, what each instance cost, and its split by provider, region, type, instance and
organization. Reports and token usage are built from these. Nothing here writes.

Every report ends at the billing watermark (the last minute the finops job billed),
so it shows complete minutes only and two reports of one moment agree.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Subquery, func, or_, select, tuple_, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.finops import schemas as out
from inventiv_api.finops.ranges import MINUTE, segments
from inventiv_common.db.models import (
    BillingProgress,
    CostActualDay,
    CostActualHour,
    CostActualMinute,
    CostCumulativeMinute,
    CostOrgBucket,
    Instance,
    InstanceType,
    Organization,
    Provider,
    Region,
    Zone,
)
from inventiv_common.finops import floor_minute, utcnow

TABLES: dict[str, Any] = {
    "minute": (CostActualMinute, CostActualMinute.bucket_minute),
    "hour": (CostActualHour, CostActualHour.bucket_hour),
    "day": (CostActualDay, CostActualDay.bucket_day),
}
DIMENSIONS = ("provider_id", "region_id", "instance_type_id", "instance_id", "organization_id")
ZERO = Decimal(0)
# Ratios and projections derived from exact amounts are rounded to this.
QUANTUM = Decimal("1e-10")


async def as_of(session: AsyncSession) -> datetime:
    """The billing watermark; before the first pass, the current minute."""
    billed = await session.scalar(select(BillingProgress.billed_until))
    return billed or floor_minute(utcnow())


# -- the cost rows of a range --------------------------------------------------------
def cost_pieces(
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
    rows = cost_pieces(org_id, start, end)
    return Decimal(await session.scalar(select(func.coalesce(func.sum(rows.c.cost), 0))) or 0)


async def series(
    session: AsyncSession,
    org_id: uuid.UUID,
    start: datetime,
    end: datetime,
    grain: str,
    instance_id: uuid.UUID | None = None,
) -> list[out.Point]:
    rows = cost_pieces(org_id, start, end, grain=grain, coarsest=grain, instance_id=instance_id)
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
