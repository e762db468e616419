"""The minute job: what each instance cost in every minute it was billable.

An instance is billable from the minute its server was created at the provider until
the minute it ended (terminated, or failed), both counted in full: providers bill
every started minute. Each pass bills every complete minute not billed yet, for every
instance, in one statement and one transaction:

- a minute row in `cost_actual_minute`, `cost_cumulative_minute` and
  `cost_forecast_minute` (keyed by instance and minute: a minute is never stored twice);
- the same amounts added to the instance's hour and day in `cost_actual_hour` and
  `cost_actual_day`, and to its organization's minute, hour and day in
  `cost_org_bucket`, only for minutes this pass inserted;
- the instance's bookmark in `billing_state` moved on, so a pass after any downtime
  knows exactly which minutes are missing, and an ended instance is closed.

Rounding never drifts: the k-th minute of an instance at hourly price p costs
round(p*k/60) - round(p*(k-1)/60) at 10 decimals, so its first n minutes add up to
exactly round(p*n/60), whatever n is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_common.finops import floor_minute

# One finops replica bills at a time (the statement is idempotent, so this only
# spares the others the work); a transaction-scoped lock, freed at commit.
BILLING_LOCK = 0x1F1_0905

_DIMS = "organization_id, provider_id, region_id, zone_id, instance_type_id"


def _rollup(grain: str) -> str:
    """The CTE adding this pass's new minutes to each instance's `grain` row."""
    bucket = f"date_trunc('{grain}', bucket_minute, 'UTC')"
    table = f"finops.cost_actual_{grain}"
    return f"""{grain}_rollup AS (
    INSERT INTO {table} (instance_id, bucket_{grain}, {_DIMS}, cost_eur, minutes)
    SELECT instance_id, {bucket}, {_DIMS}, sum(cost_eur), count(*)
    FROM actual
    GROUP BY instance_id, {bucket}, {_DIMS}
    ON CONFLICT (instance_id, bucket_{grain}) DO UPDATE
        SET cost_eur = {table}.cost_eur + excluded.cost_eur,
            minutes = {table}.minutes + excluded.minutes
    RETURNING 1
)"""  # noqa: S608 (grain is "hour" or "day", from this module)


BILL_MINUTES = text(
    f"""
WITH open AS (
    SELECT i.id AS instance_id, i.organization_id, i.provider_id, z.region_id, i.zone_id,
           i.instance_type_id, t.cost_per_hour_eur AS price,
           COALESCE(s.billed_until, date_trunc('minute', i.provider_created_at, 'UTC'))
               AS start_minute,
           COALESCE(s.minutes_billed, 0) AS k0,
           COALESCE(s.cumulative_cost_eur, 0) AS cum0,
           -- the first minute not billable: the one after the minute the instance ended in
           date_trunc('minute', COALESCE(i.terminated_at, i.failed_at)
                      - interval '1 microsecond', 'UTC') + interval '1 minute' AS end_minute
    FROM instances i
    JOIN instance_types t ON t.id = i.instance_type_id
    LEFT JOIN zones z ON z.id = i.zone_id
    LEFT JOIN finops.billing_state s ON s.instance_id = i.id
    WHERE i.provider_created_at IS NOT NULL
      AND i.provider_created_at < :upto
      AND (s.instance_id IS NULL OR NOT s.closed)
),
span AS (
    SELECT o.*, LEAST(COALESCE(o.end_minute, :upto), :upto) AS stop_minute
    FROM open o
),
due AS (
    SELECT s.*,
           GREATEST(0, floor(extract(epoch FROM s.stop_minute - s.start_minute) / 60))::int
               AS n,
           s.end_minute IS NOT NULL AND s.end_minute <= :upto AS ends
    FROM span s
),
minutes AS (
    SELECT d.instance_id, {_DIMS}, d.price, m.bucket_minute, d.k0 + m.n AS k, d.k0, d.cum0
    FROM due d
    CROSS JOIN LATERAL generate_series(
        d.start_minute, d.stop_minute - interval '1 minute', interval '1 minute'
    ) WITH ORDINALITY AS m(bucket_minute, n)
    WHERE d.n > 0
),
actual AS (
    INSERT INTO finops.cost_actual_minute (instance_id, bucket_minute, {_DIMS}, cost_eur)
    SELECT instance_id, bucket_minute, {_DIMS},
           round(price * k / 60, 10) - round(price * (k - 1) / 60, 10)
    FROM minutes
    ON CONFLICT DO NOTHING
    RETURNING instance_id, bucket_minute, {_DIMS}, cost_eur
),
cumulative AS (
    INSERT INTO finops.cost_cumulative_minute
        (instance_id, bucket_minute, {_DIMS}, cumulative_cost_eur)
    SELECT instance_id, bucket_minute, {_DIMS},
           cum0 + round(price * k / 60, 10) - round(price * k0 / 60, 10)
    FROM minutes
    ON CONFLICT DO NOTHING
    RETURNING 1
),
forecast AS (
    INSERT INTO finops.cost_forecast_minute
        (instance_id, bucket_minute, {_DIMS}, burn_rate_eur_per_hour,
         forecast_eur_1h, forecast_eur_1d, forecast_eur_30d, forecast_eur_365d)
    SELECT instance_id, bucket_minute, {_DIMS}, price,
           price, price * 24, price * 720, price * 8760
    FROM minutes
    ON CONFLICT DO NOTHING
    RETURNING 1
),
{_rollup("hour")},
{_rollup("day")},
org_buckets AS (
    INSERT INTO finops.cost_org_bucket (organization_id, grain, bucket, cost_eur, minutes)
    SELECT organization_id, g.grain, date_trunc(g.grain, bucket_minute, 'UTC'),
           sum(cost_eur), count(*)
    FROM actual CROSS JOIN (VALUES ('minute'), ('hour'), ('day')) AS g(grain)
    WHERE organization_id IS NOT NULL
    GROUP BY organization_id, g.grain, date_trunc(g.grain, bucket_minute, 'UTC')
    ON CONFLICT (organization_id, grain, bucket) DO UPDATE
        SET cost_eur = finops.cost_org_bucket.cost_eur + excluded.cost_eur,
            minutes = finops.cost_org_bucket.minutes + excluded.minutes
    RETURNING 1
),
bookmarks AS (
    INSERT INTO finops.billing_state
        (instance_id, billed_until, minutes_billed, cumulative_cost_eur, closed)
    SELECT instance_id, GREATEST(stop_minute, start_minute), k0 + n,
           cum0 + round(price * (k0 + n) / 60, 10) - round(price * k0 / 60, 10), ends
    FROM due
    WHERE n > 0 OR ends
    ON CONFLICT (instance_id) DO UPDATE
        SET billed_until = excluded.billed_until,
            minutes_billed = excluded.minutes_billed,
            cumulative_cost_eur = excluded.cumulative_cost_eur,
            closed = excluded.closed,
            updated_at = now()
    RETURNING closed
)
SELECT (SELECT count(*) FROM actual) AS minutes,
       (SELECT count(*) FROM due WHERE n > 0) AS instances,
       (SELECT count(*) FROM bookmarks WHERE closed) AS closed,
       (SELECT count(*) FROM cumulative) + (SELECT count(*) FROM forecast)
           + (SELECT count(*) FROM hour_rollup) + (SELECT count(*) FROM day_rollup)
           + (SELECT count(*) FROM org_buckets) AS other_rows
"""  # noqa: S608 (constants only)
)


@dataclass(frozen=True)
class BillingPass:
    upto: datetime
    minutes: int = 0  # instance-minutes billed by this pass
    instances: int = 0
    closed: int = 0
    skipped: bool = False  # another replica held the lock


async def bill_minutes(session: AsyncSession, now: datetime) -> BillingPass:
    """Bill every complete minute before `now` that is not billed yet. Does not commit."""
    upto = floor_minute(now)
    locked = await session.scalar(
        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": BILLING_LOCK}
    )
    if not locked:
        return BillingPass(upto=upto, skipped=True)
    row = (await session.execute(BILL_MINUTES, {"upto": upto})).one()
    await session.execute(
        text(
            "INSERT INTO finops.billing_progress (id, billed_until) VALUES (1, :upto) "
            "ON CONFLICT (id) DO UPDATE SET updated_at = now(), billed_until = "
            "GREATEST(finops.billing_progress.billed_until, excluded.billed_until)"
        ),
        {"upto": upto},
    )
    return BillingPass(upto=upto, minutes=row.minutes, instances=row.instances, closed=row.closed)
