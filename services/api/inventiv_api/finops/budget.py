"""The organization's monthly GPU budget: read it with where the month stands, set it,
remove it. The finops service acts on it (alerts, stop-at-cap); deployments read the
cap through `inventiv_common.finops.cap_reached`. Nothing here commits."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.errors import forbidden
from inventiv_api.finops import schemas as out
from inventiv_api.security.permissions import Role
from inventiv_api.security.principal import Principal
from inventiv_common.db.models import Budget, BudgetAlert
from inventiv_common.finops import month_spend, month_start, utcnow


async def read(session: AsyncSession, org_id: uuid.UUID) -> out.BudgetOut:
    now = utcnow()
    budget = await session.get(Budget, org_id, populate_existing=True)
    spent = await month_spend(session, org_id, now)
    alerts = await session.scalars(
        select(BudgetAlert)
        .where(
            BudgetAlert.organization_id == org_id,
            BudgetAlert.month == month_start(now).date(),
        )
        .order_by(BudgetAlert.threshold_percent)
    )
    limit = budget.monthly_budget_eur if budget else None
    return out.BudgetOut(
        monthly_budget_eur=limit,
        alert_thresholds=list(budget.alert_thresholds) if budget else [],
        hard_cap=bool(budget and budget.hard_cap),
        stop_at_cap=bool(budget and budget.stop_at_cap),
        month_to_date_eur=spent,
        used_percent=float(spent * 100 / limit) if limit else None,
        cap_reached=bool(budget and budget.hard_cap and limit and spent >= limit),
        alerts_this_month=[
            out.BudgetAlertOut(
                threshold_percent=a.threshold_percent, spent_eur=a.spent_eur, fired_at=a.fired_at
            )
            for a in alerts
        ],
    )


async def write(
    session: AsyncSession, principal: Principal, org_id: uuid.UUID, body: out.BudgetIn
) -> None:
    if body.stop_at_cap and principal.role is not Role.owner:
        # Stopping every running instance is the owner's call alone.
        raise forbidden("only the organization's owner can ask for stop-at-cap")
    values = {
        "monthly_budget_eur": body.monthly_budget_eur,
        "alert_thresholds": body.alert_thresholds,
        "hard_cap": body.hard_cap,
        "stop_at_cap": body.stop_at_cap,
        "updated_by_user_id": principal.user_id,
    }
    await session.execute(
        insert(Budget)
        .values(organization_id=org_id, **values)
        .on_conflict_do_update(index_elements=[Budget.organization_id], set_=values)
    )


async def remove(session: AsyncSession, org_id: uuid.UUID) -> bool:
    removed = await session.execute(delete(Budget).where(Budget.organization_id == org_id))
    return bool(removed.rowcount)  # type: ignore[attr-defined]
