"""The finops pass: bill the minutes that ended, price the usage recorded, check the
budgets. Each step is idempotent and catches up on whatever a downtime left, so a
pass can run at any moment, as often as wanted, on any replica."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventiv_common.bus import Envelope, EventBus, commit_and_publish, publish_after_commit
from inventiv_common.finops import utcnow
from inventiv_common.loops import Loop
from inventiv_common.messages import EVT_COSTS_COMPUTED
from inventiv_finops.budgets import BudgetPass, check_budgets
from inventiv_finops.costing import BillingPass, bill_minutes
from inventiv_finops.pricing import BATCH, price_usage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinopsPass:
    billing: BillingPass
    priced: int
    budgets: BudgetPass


class FinopsLoop(Loop):
    name = "finops"

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        bus: EventBus,
        *,
        interval_s: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(interval_s)
        self.session_factory = session_factory
        self.bus = bus
        self.clock = clock  # tests move time by hand
        self.last: FinopsPass | None = None

    async def run_once(self) -> int:
        done = await self.tick(self.clock())
        return done.billing.minutes + done.priced

    async def tick(self, now: datetime) -> FinopsPass:
        async with self.session_factory() as session:
            billing = await bill_minutes(session, now)
            if billing.minutes:
                publish_after_commit(
                    session,
                    Envelope(
                        type=EVT_COSTS_COMPUTED,
                        payload={
                            "upto": billing.upto.isoformat(),
                            "instance_minutes": billing.minutes,
                            "instances": billing.instances,
                        },
                    ),
                )
            await commit_and_publish(session, self.bus)
        priced = 0
        while True:
            async with self.session_factory() as session:
                batch = await price_usage(session)
                await session.commit()
            priced += batch
            if batch < BATCH:
                break
        async with self.session_factory() as session:
            budgets = await check_budgets(session, now)
            await commit_and_publish(session, self.bus)
        self.last = FinopsPass(billing, priced, budgets)
        if billing.minutes or priced or budgets.alerts or budgets.stopped:
            log.info(
                "finops pass",
                extra={
                    "instance_minutes": billing.minutes,
                    "usage_priced": priced,
                    "budget_alerts": len(budgets.alerts),
                    "stopped_at_cap": len(budgets.stopped),
                },
            )
        return self.last
