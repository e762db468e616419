"""The minute job against real PostgreSQL, with time moved by hand: exact totals,
no gap and no double count after an outage, idempotence, rollups equal to their
minutes, forecasts from the burn rate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from inventiv_common.bus import Envelope
from inventiv_common.messages import EVT_INFERENCE_USAGE_RECORDED
from inventiv_common.net import free_port
from tests.finops.conftest import T0, Books
from tests.support.processes import ServiceProcess, clean_env
from tests.support.redis_servers import REDIS_URL
from tests.support.waiting import wait_until_async

MINUTE = timedelta(minutes=1)


def cost(price: str, minutes: int) -> Decimal:
    """What `minutes` started minutes at an hourly `price` cost, to 10 decimals."""
    return round(Decimal(price) * minutes / 60, 10)


async def three_instances(books: Books) -> dict[str, tuple]:
    """A runs all along; B from minute 10 to 40:20 (31 started minutes); C from 20.
    Prices: 1.20 and 2.73 give whole cents a minute, 0.70 does not."""
    org = await books.organization()
    a = await books.instance(org, await books.instance_type("T-A", "1.20"), T0 + 30 * MINUTE / 60)
    b = await books.instance(
        org,
        await books.instance_type("T-B", "2.73"),
        T0 + 10 * MINUTE,
        terminated=T0 + 40 * MINUTE + timedelta(seconds=20),
    )
    c = await books.instance(org, await books.instance_type("T-C", "0.70"), T0 + 20 * MINUTE)
    return {"A": (a, "1.20", 90), "B": (b, "2.73", 31), "C": (c, "0.70", 70)}


async def test_three_instances_over_90_minutes_cost_exactly_their_price(books: Books) -> None:
    fleet = await three_instances(books)
    done = await books.loop.tick(T0 + 90 * MINUTE + timedelta(seconds=5))
    assert done.billing.minutes == 90 + 31 + 70
    for instance_id, price, minutes in fleet.values():
        assert await books.billed(instance_id) == (minutes, cost(price, minutes))
        cumulative = await books.scalar(
            "SELECT cumulative_cost_eur FROM finops.cost_cumulative_minute "
            "WHERE instance_id = :id ORDER BY bucket_minute DESC LIMIT 1",
            id=instance_id,
        )
        assert cumulative == cost(price, minutes)
    total = sum(cost(p, m) for _, p, m in fleet.values())
    assert total == Decimal("1.80") + Decimal("1.4105") + Decimal("0.8166666667")
    for table in ("cost_actual_minute", "cost_actual_hour", "cost_actual_day"):
        assert await books.scalar(f"SELECT sum(cost_eur) FROM finops.{table}") == total
    by_grain = await books.sql(
        "SELECT grain, sum(cost_eur), sum(minutes) FROM finops.cost_org_bucket GROUP BY grain"
    )
    assert sorted(by_grain) == [(g, total, 90 + 31 + 70) for g in ("day", "hour", "minute")]
    # B ended: closed, never looked at again; A and C stay open.
    closed = await books.sql("SELECT instance_id FROM finops.billing_state WHERE closed")
    assert [r[0] for r in closed] == [fleet["B"][0]]
    # The minute B ended in is billed in full, the next one not at all.
    last_b = await books.scalar(
        "SELECT max(bucket_minute) FROM finops.cost_actual_minute WHERE instance_id = :id",
        id=fleet["B"][0],
    )
    assert last_b == T0 + 40 * MINUTE


async def test_an_outage_of_20_minutes_is_filled_without_gap_or_double_count(
    books: Books,
) -> None:
    fleet = await three_instances(books)
    now = T0
    while now <= T0 + 90 * MINUTE:
        if not T0 + 30 * MINUTE < now < T0 + 50 * MINUTE:  # finops down in between
            await books.loop.tick(now + timedelta(seconds=3))
        now += MINUTE
    for instance_id, price, minutes in fleet.values():
        assert await books.billed(instance_id) == (minutes, cost(price, minutes))
        first, last, count = (
            await books.sql(
                "SELECT min(bucket_minute), max(bucket_minute), count(DISTINCT bucket_minute) "
                "FROM finops.cost_actual_minute WHERE instance_id = :id",
                id=instance_id,
            )
        )[0]
        assert (last - first) / MINUTE + 1 == count == minutes  # no gap
        hours = await books.scalar(
            "SELECT sum(minutes) FROM finops.cost_actual_hour WHERE instance_id = :id",
            id=instance_id,
        )
        assert hours == minutes  # each minute counted once in its hour


async def test_running_the_minute_job_twice_changes_nothing(books: Books) -> None:
    await three_instances(books)
    at = T0 + 45 * MINUTE
    first = await books.loop.tick(at)
    assert first.billing.minutes > 0

    async def snapshot() -> list:
        tables = [
            "cost_actual_minute",
            "cost_cumulative_minute",
            "cost_forecast_minute",
            "cost_actual_hour",
            "cost_actual_day",
            "billing_state",
        ]
        return [
            [
                {k: v for k, v in row._asdict().items() if k != "updated_at"}
                for row in await books.sql(f"SELECT * FROM finops.{t} ORDER BY 1, 2")
            ]
            for t in tables
        ]

    before = await snapshot()
    again = await books.loop.tick(at + timedelta(seconds=40))  # same minute, later
    assert again.billing.minutes == 0
    assert all(before) and await snapshot() == before


async def test_forecasts_follow_the_burn_rate_of_the_minute(books: Books) -> None:
    fleet = await three_instances(books)
    await books.loop.tick(T0 + 30 * MINUTE)
    row = (
        await books.sql(
            "SELECT sum(burn_rate_eur_per_hour), sum(forecast_eur_1h), sum(forecast_eur_1d), "
            "sum(forecast_eur_30d), sum(forecast_eur_365d) FROM finops.cost_forecast_minute "
            "WHERE bucket_minute = :m",
            m=T0 + 29 * MINUTE,
        )
    )[0]
    burn = sum(Decimal(p) for _, p, _ in fleet.values())  # all three run in minute 29
    assert tuple(row) == (burn, burn, burn * 24, burn * 720, burn * 8760)


async def test_a_day_boundary_splits_the_rollups(books: Books) -> None:
    org = await books.organization()
    late = T0.replace(hour=23, minute=30)
    instance_id = await books.instance(org, await books.instance_type("T-N", "0.60"), late)
    await books.loop.tick(late + 60 * MINUTE)
    days = await books.sql(
        "SELECT bucket_day, minutes, cost_eur FROM finops.cost_actual_day "
        "WHERE instance_id = :id ORDER BY 1",
        id=instance_id,
    )
    assert [(d.hour, m, c) for d, m, c in days] == [
        (0, 30, Decimal("0.3")),
        (0, 30, Decimal("0.3")),
    ]
    assert days[1][0] - days[0][0] == timedelta(days=1)


async def test_an_instance_without_a_server_costs_nothing(books: Books) -> None:
    org = await books.organization()
    type_id = await books.instance_type("T-F", "5.00")
    never = await books.instance(org, type_id, T0, status="provisioning")
    await books.sql("UPDATE instances SET provider_created_at = NULL WHERE id = :id", id=never)
    failed = await books.instance(
        org, type_id, T0, failed=T0 + timedelta(seconds=10), status="failed"
    )
    await books.loop.tick(T0 + 10 * MINUTE)
    assert await books.billed(never) == (0, Decimal(0))
    assert await books.billed(failed) == (1, cost("5.00", 1))


async def test_the_finops_process_bills_on_its_own_and_wakes_on_usage(
    books: Books, tmp_path: Path
) -> None:
    """The service as it runs in production: its loop, on the real clock."""
    org = await books.organization()
    now = datetime.now(UTC)
    instance_id = await books.instance(
        org, await books.instance_type("T-LIVE", "0.60"), now - 5 * MINUTE
    )
    port = free_port()
    process = ServiceProcess(
        "inventiv_finops",
        port,
        clean_env(
            DATABASE_URL=books.url,
            REDIS_URL=REDIS_URL,
            REDIS_CHANNEL_PREFIX=books.loop.bus.channel_prefix,
            INVENTIV_ENV="test",
            FINOPS_PORT=str(port),
            FINOPS_INTERVAL_S="600",  # only the first pass and wake-ups
        ),
        tmp_path / "finops.log",
    )
    process.wait_ready()
    try:

        async def five_minutes_billed() -> bool:
            return (await books.billed(instance_id))[0] >= 5

        await wait_until_async(five_minutes_billed, 60, "the first pass billing 5 minutes")
        minutes, total = await books.billed(instance_id)
        assert minutes in (5, 6) and total == Decimal("0.01") * minutes
        # A usage batch recorded by the gateway wakes it to price the records.
        await books.sql(
            "INSERT INTO finops.inference_usage (occurred_at, request_id, organization_id, "
            "instance_id, model_name, endpoint, stream, prompt_tokens, completion_tokens, "
            "total_tokens, latency_ms, status_code, status) VALUES (now(), 'r1', :org, :i, "
            "'m', 'chat/completions', false, 10, 5, 15, 3, 200, 'success')",
            org=org,
            i=instance_id,
        )
        await books.loop.bus.publish(Envelope(type=EVT_INFERENCE_USAGE_RECORDED))

        async def usage_priced() -> object:
            return await books.scalar("SELECT count(*) FROM finops.usage_hour")

        await wait_until_async(usage_priced, 60, "the wake-up pricing the usage record")
        assert await books.scalar("SELECT sum(prompt_tokens) FROM finops.usage_hour") == 10
    finally:
        process.stop()
