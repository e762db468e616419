"""FinOps at fleet scale: 1,000 instances with 30 days of minute costs behind them.

The generator writes what the minute job would have written over those 30 days, in
bulk: 43.2 million rows each of `cost_actual_minute` and `cost_cumulative_minute`,
the instance and organization rollups, each instance's billing bookmark and the
watermark (the forecast table gets the last minute only: no report reads further
back in it). Then:

1. the dashboard queries of one workspace holding all 1,000 instances, each run
   repeatedly: the 30-day summary (allocation along every dimension) and every window
   (minute, hour, day, 30d, 365d) -- p50 / p95 against 100 ms, and apart, the first
   run of each, on pages not yet in memory after the load;
2. the finops minute pass over 1,000 running instances -- against 200 ms: the loop's own
   `run_once()`, all of it: billing the minute that ended, pricing the usage records the
   gateway wrote during it (USAGE_PER_MINUTE, written by this script between passes, as
   the gateway's meter would) and checking the workspace's budget.

Every verdict counts the first run (right after the bulk load: pages not yet in memory)
with the others, and shows it apart: a dashboard opened after a restart is served cold.
A timed run counts only if it did all its work (every instance billed, every record
priced); one that did not stops the benchmark.

BENCH_FINOPS_INSTANCES and BENCH_FINOPS_DAYS shrink the data set; BENCH_KEEP=1 keeps
the database (it is dropped otherwise: at full size it takes about 20 GB).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from inventiv_api.finops import reports as service
from inventiv_api.finops.ranges import WINDOWS
from inventiv_common.bus import EventBus
from inventiv_common.db.engine import make_engine, make_session_factory
from inventiv_common.db.migrate import run_migrations
from inventiv_common.db.seed import apply_sql_file, default_catalog_seed_path
from inventiv_common.web import settle_heap
from inventiv_finops.loop import FinopsLoop

INSTANCES = int(os.environ.get("BENCH_FINOPS_INSTANCES", "1000"))
DAYS = int(os.environ.get("BENCH_FINOPS_DAYS", "30"))
RUNS = int(os.environ.get("BENCH_FINOPS_RUNS", "20"))
# Gateway requests metered per minute over the whole fleet (100 per second by default).
USAGE_PER_MINUTE = int(os.environ.get("BENCH_FINOPS_USAGE_PER_MINUTE", "6000"))
MINUTE_PASSES = 11
TARGETS = {"query_p95_ms": 100.0, "minute_pass_ms": 200.0}
# Hourly prices with an exact cost per minute, so the bulk rows equal the job's.
PRICES = ("0.60", "1.20", "2.40", "3.00")


async def generate(conn: asyncpg.Connection, end: datetime) -> uuid.UUID:
    """One organization, INSTANCES instances, DAYS days of billed minutes before `end`."""
    org = uuid.uuid4()
    await conn.execute(
        "INSERT INTO organizations (id, name, slug) VALUES ($1, 'Fleet', 'fleet')", org
    )
    # A budget the pass must check every minute, far from its thresholds (50/80/100 %):
    # the month-to-date sum is computed, no alert fires, so every pass does the same work.
    await conn.execute(
        "INSERT INTO finops.budgets (organization_id, monthly_budget_eur, hard_cap) "
        "VALUES ($1, $2::numeric, true)",
        org,
        str(INSTANCES * 100 * 24 * 31),
    )
    provider, zone = await conn.fetchrow(
        "SELECT p.id, z.id FROM providers p JOIN regions r ON r.provider_id = p.id "
        "JOIN zones z ON z.region_id = r.id WHERE p.code = 'mock'"
    )
    types = []
    for n, price in enumerate(PRICES):
        types.append(
            await conn.fetchval(
                "INSERT INTO instance_types (provider_id, code, name, cost_per_hour_eur) "
                "VALUES ($1, $2, $2, $3::numeric) RETURNING id",
                provider,
                f"BENCH-{n}",
                price,
            )
        )
    start = end - timedelta(days=DAYS)
    await conn.executemany(
        "INSERT INTO instances (organization_id, provider_id, zone_id, instance_type_id, "
        "status, provider_created_at) VALUES ($1, $2, $3, $4, 'ready', $5)",
        [(org, provider, zone, types[n % len(types)], start) for n in range(INSTANCES)],
    )
    dims = "i.organization_id, i.provider_id, z.region_id, i.zone_id, i.instance_type_id"
    source = (
        "FROM instances i JOIN instance_types t ON t.id = i.instance_type_id "
        "JOIN zones z ON z.id = i.zone_id WHERE i.organization_id = $1"
    )
    # Every instance of the organization, for every minute of the day from $2 to $3.
    every_minute = (
        "FROM instances i JOIN instance_types t ON t.id = i.instance_type_id "
        "JOIN zones z ON z.id = i.zone_id CROSS JOIN generate_series($2::timestamptz, "
        "$3::timestamptz - interval '1 minute', interval '1 minute') m "
        "WHERE i.organization_id = $1"
    )
    # Secondary indexes are built once at the end: much faster than row by row.
    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'finops' "
        "AND tablename = 'cost_actual_minute' AND indexname NOT LIKE 'pk_%'"
    )
    for index in indexes:
        await conn.execute(f'DROP INDEX finops."{index["indexname"]}"')
    began = time.monotonic()
    for day in range(DAYS):
        lo = start + timedelta(days=day)
        await conn.execute(
            "INSERT INTO finops.cost_actual_minute (instance_id, bucket_minute, organization_id, "
            f"provider_id, region_id, zone_id, instance_type_id, cost_eur) SELECT i.id, m, {dims}, "
            f"round(t.cost_per_hour_eur / 60, 10) {every_minute}",
            org,
            lo,
            lo + timedelta(days=1),
        )
        await conn.execute(
            "INSERT INTO finops.cost_cumulative_minute (instance_id, bucket_minute, "
            "organization_id, provider_id, region_id, zone_id, instance_type_id, "
            f"cumulative_cost_eur) SELECT i.id, m, {dims}, round(t.cost_per_hour_eur * "
            f"(extract(epoch FROM m - $4::timestamptz) / 60 + 1) / 60, 10) {every_minute}",
            org,
            lo,
            lo + timedelta(days=1),
            start,
        )
        print(
            f"  generated day {day + 1}/{DAYS} ({time.monotonic() - began:.0f} s)",
            flush=True,
        )
    for index in indexes:
        await conn.execute(index["indexdef"])
    for grain in ("hour", "day"):
        await conn.execute(
            f"INSERT INTO finops.cost_actual_{grain} (instance_id, bucket_{grain}, "
            "organization_id, provider_id, region_id, zone_id, instance_type_id, cost_eur, "
            f"minutes) SELECT instance_id, date_trunc('{grain}', bucket_minute, 'UTC'), "
            "organization_id, provider_id, region_id, zone_id, instance_type_id, sum(cost_eur), "
            "count(*) FROM finops.cost_actual_minute GROUP BY 1, 2, 3, 4, 5, 6, 7"
        )
    await conn.execute(
        "INSERT INTO finops.cost_org_bucket (organization_id, grain, bucket, cost_eur, minutes) "
        "SELECT organization_id, g, date_trunc(g, bucket_minute, 'UTC'), sum(cost_eur), "
        "count(*) FROM finops.cost_actual_minute CROSS JOIN unnest(ARRAY['minute', 'hour', "
        "'day']) AS g GROUP BY 1, 2, 3"
    )
    last = end - timedelta(minutes=1)
    await conn.execute(
        "INSERT INTO finops.cost_forecast_minute (instance_id, bucket_minute, organization_id, "
        "provider_id, region_id, zone_id, instance_type_id, burn_rate_eur_per_hour, "
        "forecast_eur_1h, forecast_eur_1d, forecast_eur_30d, forecast_eur_365d) "
        f"SELECT i.id, $2, {dims}, t.cost_per_hour_eur, t.cost_per_hour_eur, "
        f"t.cost_per_hour_eur * 24, t.cost_per_hour_eur * 720, t.cost_per_hour_eur * 8760 "
        f"{source}",
        org,
        last,
    )
    minutes = DAYS * 1440
    await conn.execute(
        "INSERT INTO finops.billing_state (instance_id, billed_until, minutes_billed, "
        "cumulative_cost_eur) SELECT i.id, $2, $3, t.cost_per_hour_eur * $3::integer / 60 "
        "FROM instances i JOIN instance_types t ON t.id = i.instance_type_id "
        "WHERE i.organization_id = $1",
        org,
        end,
        minutes,
    )
    await conn.execute("INSERT INTO finops.billing_progress (billed_until) VALUES ($1)", end)
    # What autovacuum would have done by now in a platform that ran for 30 days.
    await conn.execute("VACUUM ANALYZE")
    return org


async def write_usage(conn: asyncpg.Connection, org: uuid.UUID, minute: datetime) -> None:
    """What the gateway's meter writes in a minute: USAGE_PER_MINUTE records spread over
    the fleet's instances and over the minute, none priced yet."""
    await conn.execute(
        "INSERT INTO finops.inference_usage (occurred_at, request_id, organization_id, "
        "instance_id, model_id, model_name, endpoint, stream, prompt_tokens, "
        "completion_tokens, total_tokens, latency_ms, status_code, status) "
        "SELECT $2::timestamptz + n * interval '60 seconds' / $3, gen_random_uuid()::text, $1, "
        "f.ids[1 + n % cardinality(f.ids)], m.id, m.model_id, 'chat/completions', n % 2 = 0, "
        "200 + n % 300, 50 + n % 200, 250 + n % 300 + n % 200, 400, 200, 'success' "
        "FROM generate_series(0, $3 - 1) n, models m, "
        "(SELECT array_agg(id) AS ids FROM instances WHERE organization_id = $1) f "
        "WHERE m.model_id = 'inventiv/mock-echo'",
        org,
        minute,
        USAGE_PER_MINUTE,
    )


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def run() -> None:
    admin_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"bench_finops_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    database_url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(database_url, pool_size=4)
    try:
        await run_migrations(engine)
        await apply_sql_file(engine, default_catalog_seed_path())
        end = datetime.now(UTC).replace(second=0, microsecond=0)
        conn = await asyncpg.connect(database_url)
        began = time.monotonic()
        print(f"generating {INSTANCES} instances x {DAYS} days of minutes ...", flush=True)
        org = await generate(conn, end)
        rows = await conn.fetchval("SELECT count(*) FROM finops.cost_actual_minute")
        print(f"  {rows:,} minute rows in {time.monotonic() - began:.0f} s", flush=True)
        await conn.close()

        sessions = make_session_factory(engine)
        settle_heap()  # as every service process does once started
        timings: dict[str, list[float]] = {}
        cold: dict[str, float] = {}

        async def timed(label: str, call) -> None:  # type: ignore[no-untyped-def]
            """RUNS timed calls, after a first one shown apart: right after the bulk
            load, it reads pages no query has brought into memory yet."""
            samples = timings.setdefault(label, [])
            for _ in range(RUNS + 1):
                async with sessions() as session:
                    started = time.perf_counter()
                    await call(session)
                    samples.append((time.perf_counter() - started) * 1000)
            cold[label] = samples.pop(0)

        await timed(
            "summary, 30 days",
            lambda s: service.summary(s, org, end - timedelta(days=30), end),
        )
        for window_name, window in WINDOWS.items():
            await timed(
                f"window {window_name}",
                lambda s, n=window_name, w=window: service.cost_window(
                    s, org, n, w.length, w.grain
                ),
            )

        # The reports must be right, not only fast.
        async with sessions() as session:
            reported = (
                await service.summary(session, org, end - timedelta(days=DAYS), end)
            ).total_eur
        check = await asyncpg.connect(database_url)
        stored = await check.fetchval("SELECT sum(cost_eur) FROM finops.cost_actual_day")
        await check.close()
        assert reported == stored, (reported, stored)

        # The finops loop's whole pass, minute after minute; the first, right after the
        # bulk load, is counted in the verdict and shown apart.
        bus = EventBus(
            os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            channel_prefix=f"bench-{uuid.uuid4().hex[:6]}:",
        )
        feed = await asyncpg.connect(database_url)
        passes: list[float] = []
        minute = 0

        def clock() -> datetime:
            """A second into the minute after the one that just ended."""
            return end + timedelta(minutes=minute + 1, seconds=1)

        loop = FinopsLoop(sessions, bus, interval_s=60, clock=clock)
        for minute in range(MINUTE_PASSES):  # the clock reads `minute`
            await write_usage(feed, org, end + timedelta(minutes=minute))
            started = time.perf_counter()
            await loop.run_once()
            passes.append((time.perf_counter() - started) * 1000)
            done = loop.last
            # A pass that left work undone would be fast for the wrong reason.
            assert done is not None and done.billing.minutes == INSTANCES, done
            assert done.priced == USAGE_PER_MINUTE, done
            assert not done.budgets.alerts and not done.budgets.stopped, done
        unpriced = await feed.fetchval(
            "SELECT count(*) FROM finops.inference_usage WHERE input_cost_eur IS NULL"
        )
        assert unpriced == 0, unpriced
        await feed.close()
        await bus.close()
        cold_pass, warm = passes[0], passes[1:]

        def verdict(ok: bool) -> str:
            return "meets" if ok else "MISSES"

        print(f"\n{INSTANCES} instances, {DAYS} days of minutes, one workspace; {RUNS} runs each")
        print(
            "verdicts count every run, the first (cold, right after the load) included: "
            "p95 of the warm runs and the cold run must both be within target"
        )
        print(f"{'query':32} {'p50 ms':>8} {'p95 ms':>8} {'cold ms':>8} {'target':>8}  verdict")
        for label, samples in timings.items():
            p95 = percentile(samples, 0.95)
            ok = max(p95, cold[label]) <= TARGETS["query_p95_ms"]
            print(
                f"{label:32} {statistics.median(samples):8.1f} {p95:8.1f} {cold[label]:8.1f} "
                f"{TARGETS['query_p95_ms']:8.0f}  {verdict(ok)}"
            )
        worst = max(passes)
        print(
            f"{'minute pass, ' + str(INSTANCES) + ' running':32} {statistics.median(warm):8.1f} "
            f"{max(warm):8.1f} {cold_pass:8.1f} {TARGETS['minute_pass_ms']:8.0f}  "
            f"{verdict(worst <= TARGETS['minute_pass_ms'])}  (p50 / worst of the "
            f"{len(warm)} warm passes, then the cold one; each pass billed {INSTANCES} "
            f"instance-minutes, priced {USAGE_PER_MINUTE} usage records, checked 1 budget)"
        )
    finally:
        await engine.dispose()
        if os.environ.get("BENCH_KEEP") != "1":
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        else:
            print(f"kept database {name}")
        await admin.close()


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
