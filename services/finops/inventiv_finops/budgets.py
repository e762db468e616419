"""Budgets that act: each organization's month-to-date GPU cost against its budget.

A threshold (a percentage of the budget) fires once a month: a row in
`budget_alerts` (its key is what makes it once), an action log and an
`EVT:BUDGET_THRESHOLD_REACHED`. At 100 % with a hard cap, `EVT:BUDGET_CAP_REACHED`
and a `budget.cap_reached` log; the api then refuses new deployments. Running
instances are stopped only if the owner asked for it (`stop_at_cap`): each live one
gets a termination request, as a user's DELETE would.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_common import actions
from inventiv_common.actions import log_action
from inventiv_common.bus import Envelope, publish_after_commit
from inventiv_common.db.models import Budget, BudgetAlert, CostActualDay, Instance
from inventiv_common.finops import month_start, next_month
from inventiv_common.instance_requests import request_termination
from inventiv_common.lifecycle import ARCHIVABLE_STATES, InstanceStatus
from inventiv_common.messages import EVT_BUDGET_CAP_REACHED, EVT_BUDGET_THRESHOLD_REACHED

# An instance in one of these needs no stopping: ended, or already ending.
_ENDED = [s.value for s in ARCHIVABLE_STATES | {InstanceStatus.terminating}]


@dataclass
class BudgetPass:
    alerts: list[tuple[uuid.UUID, int]] = field(default_factory=list)
    stopped: list[uuid.UUID] = field(default_factory=list)


async def check_budgets(session: AsyncSession, now: datetime) -> BudgetPass:
    """Fire the thresholds crossed this month and stop what stop-at-cap asks to stop.
    Does not commit."""
    start = month_start(now)
    spent_by_org = (
        select(
            CostActualDay.organization_id.label("org"),
            func.sum(CostActualDay.cost_eur).label("spent"),
        )
        .where(CostActualDay.bucket_day >= start, CostActualDay.bucket_day < next_month(start))
        .group_by(CostActualDay.organization_id)
        .subquery()
    )
    rows = (
        await session.execute(
            select(Budget, func.coalesce(spent_by_org.c.spent, 0)).outerjoin(
                spent_by_org, spent_by_org.c.org == Budget.organization_id
            )
        )
    ).all()
    result = BudgetPass()
    for budget, spent in rows:
        spent = Decimal(spent)
        if budget.monthly_budget_eur <= 0:
            continue
        percents = set(budget.alert_thresholds or [])
        if budget.hard_cap:
            percents.add(100)
        for percent in sorted(percents):
            crossed = spent * 100 >= budget.monthly_budget_eur * percent
            if crossed and await _fire(session, budget, start, percent, spent, now):
                result.alerts.append((budget.organization_id, percent))
        if budget.hard_cap and budget.stop_at_cap and spent >= budget.monthly_budget_eur:
            result.stopped += await _stop_instances(session, budget, spent)
    return result


async def _fire(
    session: AsyncSession,
    budget: Budget,
    month: datetime,
    percent: int,
    spent: Decimal,
    now: datetime,
) -> bool:
    """Record a threshold once a month; True the one time it is new."""
    inserted = await session.scalar(
        insert(BudgetAlert)
        .values(
            organization_id=budget.organization_id,
            month=month.date(),
            threshold_percent=percent,
            spent_eur=spent,
            budget_eur=budget.monthly_budget_eur,
            fired_at=now,
        )
        .on_conflict_do_nothing()
        .returning(BudgetAlert.threshold_percent)
    )
    if inserted is None:
        return False
    facts = {
        "threshold_percent": percent,
        "spent_eur": str(spent),
        "budget_eur": str(budget.monthly_budget_eur),
        "month": month.date().isoformat(),
    }
    if percent in (budget.alert_thresholds or []):
        log_action(
            session,
            None,
            actions.BUDGET_THRESHOLD_REACHED,
            component="finops",
            organization_id=budget.organization_id,
            details=facts,
        )
        _publish(EVT_BUDGET_THRESHOLD_REACHED, session, budget, facts)
    if percent == 100 and budget.hard_cap:
        log_action(
            session,
            None,
            actions.BUDGET_CAP_REACHED,
            component="finops",
            organization_id=budget.organization_id,
            details={**facts, "stop_at_cap": budget.stop_at_cap},
        )
        _publish(EVT_BUDGET_CAP_REACHED, session, budget, facts)
    return True


def _publish(kind: str, session: AsyncSession, budget: Budget, facts: dict[str, object]) -> None:
    publish_after_commit(
        session,
        Envelope(type=kind, organization_id=budget.organization_id, payload=facts),
    )


async def _stop_instances(session: AsyncSession, budget: Budget, spent: Decimal) -> list[uuid.UUID]:
    live = await session.scalars(
        select(Instance).where(
            Instance.organization_id == budget.organization_id,
            Instance.status.not_in(_ENDED),
            Instance.terminate_requested_at.is_(None),
        )
    )
    stopped = []
    for instance in live:
        await request_termination(
            session,
            instance,
            component="finops",
            details={
                "reason": "budget cap reached (stop at cap)",
                "spent_eur": str(spent),
                "budget_eur": str(budget.monthly_budget_eur),
            },
        )
        stopped.append(instance.id)
    return stopped
