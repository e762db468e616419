"""/finops: costs, forecasts, token usage and the budget of the current workspace.

Amounts are EUR, exact, as strings. Moments are ISO 8601 (UTC when no zone is given);
a malformed or reversed range, or an unknown window, is a 400."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from inventiv_api.audit import service as audit
from inventiv_api.deps import SessionDep
from inventiv_api.errors import ApiError
from inventiv_api.finops import budget, costs, reports, token_usage
from inventiv_api.finops import schemas as out
from inventiv_api.finops.ranges import (
    DAY,
    HOUR,
    MINUTE,
    checked_range,
    parse_moment,
    window,
)
from inventiv_api.security.permissions import Permission as P
from inventiv_api.security.principal import Principal, require
from inventiv_api.security.workspace import current_org_id
from inventiv_common.finops import month_start

router = APIRouter(prefix="/finops", tags=["finops"])
Reader = Annotated[Principal, Depends(require(P.finops_read))]
Manager = Annotated[Principal, Depends(require(P.finops_manage))]
From = Annotated[str | None, Query(alias="from", description="ISO 8601, inclusive")]
To = Annotated[str | None, Query(description="ISO 8601, exclusive")]


async def _month_so_far(
    session: SessionDep, from_: str | None, to: str | None, step: timedelta
) -> tuple[datetime, datetime]:
    """[from, to) on `step` boundaries; by default from the month's start to the last
    billed minute."""
    end = parse_moment(to, "to") or await costs.as_of(session)
    return checked_range(
        parse_moment(from_, "from") or month_start(end - MINUTE),
        end,
        default_end=end,
        default_length=DAY,
        longest=400 * DAY,
        step=step,
    )


async def _minute_range(
    session: SessionDep, from_: str | None, to: str | None
) -> tuple[datetime, datetime]:
    """[from, to) by the minute, a day at most; by default the last hour."""
    return checked_range(
        parse_moment(from_, "from"),
        parse_moment(to, "to"),
        default_end=await costs.as_of(session),
        default_length=HOUR,
        longest=DAY,
    )


@router.get("/cost/current", response_model=out.CurrentCost)
async def current_cost(principal: Reader, session: SessionDep) -> out.CurrentCost:
    return await reports.current(session, current_org_id(principal))


@router.get("/dashboard/costs/summary", response_model=out.CostSummary)
async def cost_summary(
    principal: Reader, session: SessionDep, from_: From = None, to: To = None
) -> out.CostSummary:
    """Total and allocation by provider, region, instance type, instance and
    organization over [from, to); by default the month so far."""
    start, end = await _month_so_far(session, from_, to, MINUTE)
    return await reports.summary(session, current_org_id(principal), start, end)


@router.get("/dashboard/costs/window", response_model=out.CostWindow)
async def cost_window(
    principal: Reader,
    session: SessionDep,
    window_name: Annotated[str, Query(alias="window")] = "day",
) -> out.CostWindow:
    """The last minute, hour, day, 30 or 365 days, with a series at a fitting grain."""
    chosen = window(window_name)
    return await reports.cost_window(
        session, current_org_id(principal), window_name, chosen.length, chosen.grain
    )


@router.get("/cost/actual/minute", response_model=out.Series)
async def actual_minutes(
    principal: Reader,
    session: SessionDep,
    from_: From = None,
    to: To = None,
    instance_id: uuid.UUID | None = None,
) -> out.Series:
    """Cost per minute (at most a day; by default the last hour)."""
    start, end = await _minute_range(session, from_, to)
    points = await costs.series(
        session, current_org_id(principal), start, end, "minute", instance_id
    )
    return out.Series(instance_id=instance_id, from_=start, to=end, points=points)


@router.get("/cost/cumulative/minute", response_model=out.Series)
async def cumulative_minutes(
    principal: Reader,
    session: SessionDep,
    from_: From = None,
    to: To = None,
    instance_id: uuid.UUID | None = None,
) -> out.Series:
    """Spent since the beginning, at each minute (at most a day; by default the last hour)."""
    start, end = await _minute_range(session, from_, to)
    points = await reports.cumulative_series(
        session, current_org_id(principal), start, end, instance_id
    )
    return out.Series(instance_id=instance_id, from_=start, to=end, points=points)


@router.get("/forecast", response_model=out.Forecast)
async def forecast(principal: Reader, session: SessionDep) -> out.Forecast:
    """At the current burn rate: the next hour, day, 30 and 365 days, and the month's end."""
    return await reports.forecast(session, current_org_id(principal))


@router.get("/usage", response_model=out.Usage)
async def usage(
    principal: Reader, session: SessionDep, from_: From = None, to: To = None
) -> out.Usage:
    """Tokens and their cost by model, API key, user and instance, with each
    instance's GPU cost per 1k tokens; whole hours, by default the month so far."""
    start, end = await _month_so_far(session, from_, to, HOUR)
    return await token_usage.usage(session, current_org_id(principal), start, end)


@router.get("/token_cost", response_model=out.TokenCost)
async def token_cost(
    principal: Reader,
    session: SessionDep,
    granularity: str = "hour",
    from_: From = None,
    to: To = None,
    instance_id: uuid.UUID | None = None,
) -> out.TokenCost:
    """Each instance's real GPU cost per 1k tokens served, per hour (31 days at most)
    or per day (400 days at most)."""
    if granularity not in ("hour", "day"):
        raise ApiError(400, "bad_granularity", "granularity is `hour` or `day`")
    step = HOUR if granularity == "hour" else DAY
    start, end = checked_range(
        parse_moment(from_, "from"),
        parse_moment(to, "to"),
        default_end=await costs.as_of(session),
        default_length=DAY if granularity == "hour" else 30 * DAY,
        longest=31 * DAY if granularity == "hour" else 400 * DAY,
        step=step,
    )
    points = await token_usage.token_cost(
        session, current_org_id(principal), start, end, granularity, instance_id
    )
    return out.TokenCost(granularity=granularity, from_=start, to=end, points=points)


@router.get("/budget", response_model=out.BudgetOut)
async def get_budget(principal: Reader, session: SessionDep) -> out.BudgetOut:
    return await budget.read(session, current_org_id(principal))


@router.put("/budget", response_model=out.BudgetOut)
async def put_budget(
    body: out.BudgetIn, principal: Manager, request: Request, session: SessionDep
) -> out.BudgetOut:
    """Set the monthly budget: alert thresholds (% of it, each fires once a month), a
    hard cap (no new deployment past it) and, for the owner, stop-at-cap."""
    org_id = current_org_id(principal)
    await budget.write(session, principal, org_id, body)
    audit.record(
        session=session,
        request=request,
        action="finops.budget_set",
        principal=principal,
        resource_type="budget",
        resource_id=org_id,
        details=body.model_dump(mode="json"),
    )
    await session.commit()
    return await budget.read(session, org_id)


@router.delete("/budget", status_code=204)
async def delete_budget(principal: Manager, request: Request, session: SessionDep) -> Response:
    org_id = current_org_id(principal)
    if await budget.remove(session, org_id):
        audit.record(
            session=session,
            request=request,
            action="finops.budget_removed",
            principal=principal,
            resource_type="budget",
            resource_id=org_id,
        )
    await session.commit()
    return Response(status_code=204)
