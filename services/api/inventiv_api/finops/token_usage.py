"""Token usage of the caller's workspace (by model, API key, user and instance, priced)
and what 1k tokens really cost in GPU time, instance by instance. Reads only."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.finops import schemas as out
from inventiv_api.finops.costs import QUANTUM, ZERO, cost_pieces, instance_costs
from inventiv_common.db.models import ApiKey, UsageHour, User

PER_1K = Decimal(1000)
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
    rows = cost_pieces(
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
