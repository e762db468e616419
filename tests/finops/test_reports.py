"""The /finops reports and the budget, against a live api on a database the finops
loop bills with a clock the test moves: every report adds up to the minute rows,
tokens are priced as configured, and budgets alert, refuse and stop as asked."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from inventiv_common.bus import Envelope, EventBus
from inventiv_common.finops import floor_minute, month_start
from inventiv_common.messages import Channel
from tests.api.conftest import ADMIN_PASSWORD, LiveApi, create_user, invite_and_join, start_api
from tests.finops.conftest import T0, Books
from tests.finops.test_costs import cost, three_instances

MINUTE = timedelta(minutes=1)


@dataclass
class Console:
    api: LiveApi
    owner: httpx.Client
    org: uuid.UUID


@pytest.fixture
async def console(books: Books, tmp_path: Path) -> AsyncIterator[Console]:
    live = start_api(books.url, tmp_path / "api.log")
    owner = live.login("admin", ADMIN_PASSWORD)
    created = owner.post("/organizations", json={"name": "Costly"})
    assert created.status_code == 201, created.text
    org = uuid.UUID(created.json()["id"])
    assert (
        owner.put("/organizations/current", json={"organization_id": str(org)}).status_code == 204
    )
    yield Console(live, owner, org)
    live.process.stop()


def at(moment: datetime) -> str:
    return moment.isoformat()


async def own_three_instances(books: Books, org: uuid.UUID) -> dict[str, tuple]:
    fleet = await three_instances(books)
    await books.sql("UPDATE instances SET organization_id = :org", org=org)
    return fleet


async def minute_sum(books: Books, org: uuid.UUID, start: datetime, end: datetime) -> Decimal:
    value = await books.scalar(
        "SELECT COALESCE(sum(cost_eur), 0) FROM finops.cost_actual_minute "
        "WHERE organization_id = :org AND bucket_minute >= :lo AND bucket_minute < :hi",
        org=org,
        lo=start,
        hi=end,
    )
    return Decimal(str(value))


async def test_every_report_adds_up_to_its_minutes(books: Books, console: Console) -> None:
    fleet = await own_three_instances(books, console.org)
    await books.loop.tick(T0 + 90 * MINUTE)
    end = T0 + 90 * MINUTE
    owner = console.owner
    expected = sum(cost(p, m) for _, p, m in fleet.values())

    summary = owner.get(
        "/finops/dashboard/costs/summary", params={"from": at(T0), "to": at(end)}
    ).json()
    assert Decimal(summary["total_eur"]) == expected
    assert summary["as_of"].startswith(end.isoformat()[:16])
    for dimension in ("by_provider", "by_region", "by_instance_type", "by_instance"):
        assert sum(Decimal(s["cost_eur"]) for s in summary[dimension]) == expected, dimension
    assert [s["id"] for s in summary["by_organization"]] == [str(console.org)]
    by_type = {s["code"]: Decimal(s["cost_eur"]) for s in summary["by_instance_type"]}
    assert by_type == {f"T-{k}": cost(p, m) for k, (_, p, m) in fleet.items()}

    # Every window equals the sum of its minutes, and its series adds up to it.
    for name, length in (
        ("minute", MINUTE),
        ("hour", 60 * MINUTE),
        ("day", timedelta(days=1)),
        ("30d", timedelta(days=30)),
        ("365d", timedelta(days=365)),
    ):
        window = owner.get("/finops/dashboard/costs/window", params={"window": name}).json()
        total = Decimal(window["total_eur"])
        assert total == await minute_sum(books, console.org, end - length, end), name
        assert sum(Decimal(p["cost_eur"]) for p in window["series"]) == total, name
    # A range with ragged minutes, hours and days at both ends, read from all three tables.
    await books.loop.tick(T0 + timedelta(days=2, minutes=7))
    ragged = (T0 + 37 * MINUTE, T0 + timedelta(days=1, hours=3, minutes=13))
    summary = owner.get(
        "/finops/dashboard/costs/summary",
        params={"from": at(ragged[0]), "to": at(ragged[1])},
    ).json()
    assert Decimal(summary["total_eur"]) == await minute_sum(books, console.org, *ragged)

    minutes = owner.get("/finops/cost/actual/minute", params={"from": at(T0), "to": at(end)}).json()
    assert len(minutes["points"]) == 90
    assert sum(Decimal(p["cost_eur"]) for p in minutes["points"]) == expected
    cumulative = owner.get(
        "/finops/cost/cumulative/minute", params={"from": at(end - 10 * MINUTE), "to": at(end)}
    ).json()["points"]
    assert Decimal(cumulative[-1]["cost_eur"]) == expected
    a_id = fleet["A"][0]
    mine = owner.get(
        "/finops/cost/cumulative/minute",
        params={"from": at(T0), "to": at(end), "instance_id": str(a_id)},
    ).json()["points"]
    assert Decimal(mine[-1]["cost_eur"]) == cost("1.20", 90)


async def test_current_cost_and_forecast_follow_the_burn_rate(
    books: Books, console: Console
) -> None:
    await own_three_instances(books, console.org)
    await books.loop.tick(T0 + 90 * MINUTE)
    current = console.owner.get("/finops/cost/current").json()
    burn = Decimal("1.20") + Decimal("0.70")  # B ended at minute 40
    assert current["running_instances"] == 2
    assert Decimal(current["burn_rate_eur_per_hour"]) == burn
    # A and C ran the whole last hour; B its minutes 30 to 40 (11 at 2.73 EUR/h).
    assert Decimal(current["last_hour_eur"]) == burn + Decimal("0.5005")
    assert Decimal(current["all_time_eur"]) == Decimal(current["today_eur"])
    forecast = console.owner.get("/finops/forecast").json()
    assert Decimal(forecast["forecast_eur_1h"]) == burn
    assert Decimal(forecast["forecast_eur_1d"]) == burn * 24
    assert Decimal(forecast["forecast_eur_30d"]) == burn * 720
    assert Decimal(forecast["forecast_eur_365d"]) == burn * 8760
    assert len(forecast["by_instance"]) == 2


async def test_bad_ranges_and_windows_are_400s(books: Books, console: Console) -> None:
    owner = console.owner
    cases = [
        ("/finops/dashboard/costs/window", {"window": "week"}, "bad_window"),
        ("/finops/dashboard/costs/summary", {"from": at(T0), "to": at(T0 - MINUTE)}, "bad_range"),
        ("/finops/dashboard/costs/summary", {"from": "yesterday"}, "bad_range"),
        (
            "/finops/cost/actual/minute",
            {"from": at(T0), "to": at(T0 + timedelta(days=2))},
            "bad_range",
        ),
        ("/finops/cost/cumulative/minute", {"to": "2026-13-01"}, "bad_range"),
        ("/finops/usage", {"from": at(T0), "to": at(T0)}, "bad_range"),
        ("/finops/token_cost", {"granularity": "minute"}, "bad_granularity"),
    ]
    for path, params, code in cases:
        response = owner.get(path, params=params)
        assert response.status_code == 400, (path, params, response.text)
        assert response.json()["error"]["code"] == code, response.text


async def test_tokens_are_priced_and_each_gpu_hour_costs_per_1k_tokens(
    books: Books, console: Console
) -> None:
    org = console.org
    hour = T0 + timedelta(hours=1)
    instance_id = await books.instance(org, await books.instance_type("T-TOK", "1.20"), T0)
    model_id = await books.scalar("SELECT id FROM models WHERE model_id = 'inventiv/mock-echo'")
    await books.sql(
        "UPDATE models SET price_per_1k_input_tokens_eur = 0.002, "
        "price_per_1k_output_tokens_eur = 0.004 WHERE id = :id",
        id=model_id,
    )
    key = console.owner.post("/api_keys", json={"name": "tokens"}).json()
    for n in range(3):
        await books.sql(
            "INSERT INTO finops.inference_usage (occurred_at, request_id, organization_id, "
            "api_key_id, instance_id, model_id, model_name, endpoint, stream, prompt_tokens, "
            "completion_tokens, total_tokens, latency_ms, status_code, status) VALUES "
            "(:at, :rid, :org, :key, :instance, :model, 'inventiv/mock-echo', "
            "'chat/completions', false, 1000, 500, 1500, 12, 200, 'success')",
            at=hour + n * MINUTE,
            rid=uuid.uuid4().hex,
            org=org,
            key=uuid.UUID(key["id"]),
            instance=instance_id,
            model=model_id,
        )
    await books.loop.tick(T0 + timedelta(hours=2, seconds=1))
    priced = await books.sql("SELECT input_cost_eur, output_cost_eur FROM finops.inference_usage")
    assert {tuple(r) for r in priced} == {(Decimal("0.002"), Decimal("0.002"))}
    assert books.loop.last is not None and books.loop.last.priced == 3

    usage = console.owner.get(
        "/finops/usage", params={"from": at(hour), "to": at(hour + timedelta(hours=1))}
    ).json()
    assert usage["total"]["total_tokens"] == 4500
    assert Decimal(usage["total"]["token_cost_eur"]) == Decimal("0.012")
    assert [(m["name"], m["requests"]) for m in usage["by_model"]] == [("inventiv/mock-echo", 3)]
    assert [(k["id"], k["name"]) for k in usage["by_api_key"]] == [(key["id"], "tokens")]
    (line,) = usage["by_instance"]
    # One full GPU hour at 1.20 EUR served 4,500 tokens: 1.20 * 1000 / 4500 per 1k.
    assert Decimal(line["gpu_cost_eur"]) == Decimal("1.20")
    assert Decimal(line["gpu_cost_per_1k_tokens_eur"]) == Decimal("0.2666666667")
    series = console.owner.get(
        "/finops/token_cost",
        params={"granularity": "hour", "from": at(T0), "to": at(T0 + timedelta(hours=2))},
    ).json()["points"]
    assert [(p["tokens"], p["gpu_cost_per_1k_tokens_eur"]) for p in series] == [
        (0, None),
        (4500, "0.2666666667"),
    ]
    # Pricing the same records again is impossible: they are priced once.
    await books.loop.tick(T0 + timedelta(hours=2, minutes=1))
    assert await books.scalar("SELECT sum(requests) FROM finops.usage_hour") == 3
    # Tiny amounts read as plain decimals, never in exponent notation.
    later = hour + timedelta(hours=2)
    await books.sql(
        "UPDATE models SET price_per_1k_input_tokens_eur = 0.0001 WHERE id = :id", id=model_id
    )
    await books.sql(
        "INSERT INTO finops.inference_usage (occurred_at, request_id, organization_id, "
        "instance_id, model_id, model_name, endpoint, stream, prompt_tokens, "
        "completion_tokens, total_tokens, latency_ms, status_code, status) VALUES "
        "(:at, 'tiny', :org, :instance, :model, 'inventiv/mock-echo', 'chat/completions', "
        "false, 1, 0, 1, 5, 200, 'success')",
        at=later,
        org=org,
        instance=instance_id,
        model=model_id,
    )
    await books.loop.tick(later + timedelta(minutes=1))
    tiny = console.owner.get(
        "/finops/usage", params={"from": at(later), "to": at(later + timedelta(hours=1))}
    ).json()["total"]
    assert tiny["input_cost_eur"] == "0.0000001000"


def deploy_unknown(client: httpx.Client) -> httpx.Response:
    """A deployment of ids that exist nowhere: refused by the budget, or else a 404."""
    ids = {k: str(uuid.uuid4()) for k in ("instance_type_id", "zone_id", "model_id")}
    return client.post("/deployments", json=ids)


@contextlib.asynccontextmanager
async def heard(bus: EventBus, *channels: str) -> AsyncIterator[list[Envelope]]:
    """What the channels carried while the block ran, every message of it: the block's
    publishes were taken by Redis before it ended, so a marker published after it on
    each channel arrives after them, and the listening stops once the markers are in."""
    listened = list(channels or [Channel.finops])
    got: list[Envelope] = []
    stop, subscribed, ended = asyncio.Event(), asyncio.Event(), asyncio.Event()
    marker = f"end-of-block-{uuid.uuid4().hex}"

    async def keep(envelope: Envelope) -> None:
        got.append(envelope)
        if sum(e.correlation_id == marker for e in got) == len(listened):
            ended.set()

    task = asyncio.create_task(bus.listen(listened, keep, stop=stop, subscribed=subscribed))
    await asyncio.wait_for(subscribed.wait(), 15)
    try:
        yield got
        for channel in listened:
            await bus.publish(Envelope(type="EVT:COST_COMPUTED", correlation_id=marker), channel)
        await asyncio.wait_for(ended.wait(), 30)
        got[:] = [e for e in got if e.correlation_id != marker]
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def test_budget_thresholds_fire_once_the_cap_refuses_and_stop_at_cap_stops(
    books: Books, console: Console, bus: EventBus
) -> None:
    owner, org = console.owner, console.org
    now = floor_minute(datetime.now(UTC))
    start = max(month_start(now), now - 30 * MINUTE)  # this month: the cap reads it
    instance_id = await books.instance(org, await books.instance_type("T-BIG", "6.00"), start)
    create_user(owner, "budget-admin")
    admin = invite_and_join(console.api, owner, "budget-admin", "admin")

    body = {"monthly_budget_eur": "1.00", "alert_thresholds": [50, 80], "hard_cap": True}
    set_by_admin = admin.put("/finops/budget", json={**body, "stop_at_cap": True})
    assert set_by_admin.status_code == 403  # stop-at-cap is the owner's call
    assert admin.put("/finops/budget", json=body).status_code == 200
    bad = owner.put("/finops/budget", json={**body, "alert_thresholds": [0]})
    assert bad.status_code == 422

    async with heard(bus) as events:
        for minutes in (4, 6, 9, 10, 11):  # 0.10 EUR a minute
            await books.loop.tick(start + minutes * MINUTE)
    fired = [(e.type, e.payload["threshold_percent"]) for e in events if "BUDGET" in e.type]
    assert fired == [
        ("EVT:BUDGET_THRESHOLD_REACHED", 50),
        ("EVT:BUDGET_THRESHOLD_REACHED", 80),
        ("EVT:BUDGET_CAP_REACHED", 100),
    ]
    logs = owner.get("/action_logs", params={"action_type": "budget.threshold_reached"}).json()
    assert sorted(log["details"]["threshold_percent"] for log in logs) == [50, 80]
    capped = owner.get("/action_logs", params={"action_type": "budget.cap_reached"}).json()
    assert len(capped) == 1
    state = owner.get("/finops/budget").json()
    assert state["cap_reached"] and Decimal(state["month_to_date_eur"]) == Decimal("1.1")
    assert [a["threshold_percent"] for a in state["alerts_this_month"]] == [50, 80, 100]

    refused = deploy_unknown(owner)
    assert refused.status_code == 402, refused.text
    assert refused.json()["error"]["code"] == "budget_cap_reached"
    # Left alone: the owner did not ask for stop-at-cap.
    assert (
        await books.scalar(
            "SELECT terminate_requested_at FROM instances WHERE id = :id", id=instance_id
        )
        is None
    )

    assert owner.put("/finops/budget", json={**body, "stop_at_cap": True}).status_code == 200
    async with heard(bus, Channel.orchestrator) as commands:
        await books.loop.tick(start + 12 * MINUTE)
    assert books.loop.last is not None and books.loop.last.budgets.stopped == [instance_id]
    assert [(c.type, c.payload["instance_id"]) for c in commands] == [
        ("CMD:TERMINATE", str(instance_id))
    ]
    asked = owner.get(
        "/action_logs",
        params={"action_type": "instance.terminate_requested", "instance_id": str(instance_id)},
    ).json()
    assert [(log["component"], log["details"]["reason"]) for log in asked] == [
        ("finops", "budget cap reached (stop at cap)")
    ]
    # Lifting the cap lets deployments through the budget check again.
    assert owner.delete("/finops/budget").status_code == 204
    again = deploy_unknown(owner)
    assert again.status_code == 404  # past the budget check, stopped by the unknown type
