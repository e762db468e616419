"""The gateway's accounting when things go wrong: clients walking away mid-stream, and
PostgreSQL taken away from the api for ten seconds under load. Real processes: api,
orchestrator, worker agent and mock engine; the official `openai` client."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from inventiv_common.net import free_port
from tests.lifecycle.conftest import Platform
from tests.lifecycle.test_gateway_openai import api_key, client, engine_port
from tests.support.faults import CuttableLink
from tests.support.mock_engine import MOCK_MODEL
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_until

PROMPT = [{"role": "user", "content": "tell me a long story"}]  # five tokens


def usage_rows(platform: Platform, instance_id: str) -> list[asyncpg.Record]:
    async def fetch() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(platform.env["DATABASE_URL"])
        try:
            return await conn.fetch(
                "SELECT stream, prompt_tokens, completion_tokens, status, latency_ms, "
                "occurred_at FROM finops.inference_usage WHERE instance_id = $1",
                uuid.UUID(instance_id),
            )
        finally:
            await conn.close()

    return asyncio.run(fetch())


def wait_rows(platform: Platform, instance_id: str, count: int) -> list[asyncpg.Record]:
    """The instance's usage rows once there are `count` (or what there is at the
    deadline, for the caller's assertion to show)."""
    deadline = time.monotonic() + 60
    rows = usage_rows(platform, instance_id)
    while len(rows) < count and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = usage_rows(platform, instance_id)
    return rows


def engine_metrics(platform: Platform, instance_id: str) -> dict[str, float]:
    """The instance's engine's counters and gauges, by name."""
    port = asyncio.run(engine_port(platform, instance_id))
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        line.split("{")[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(("vllm:", "mock:")) and "{" in line
    }


def engine_counts(platform: Platform, instance_id: str) -> tuple[float, float]:
    """(prompt tokens, generated tokens) as the instance's engine counted them."""
    values = engine_metrics(platform, instance_id)
    return values["vllm:prompt_tokens_total"], values["vllm:generation_tokens_total"]


@pytest.mark.platform_env(MOCK_ENGINE_FLAGS="--token-delay-ms 40")
def test_clients_leaving_mid_stream_stop_the_engine_and_are_metered_to_the_token(
    platform: Platform,
) -> None:
    instance_id = platform.deploy()["id"]
    platform.wait_status(instance_id, "ready")
    ai = client(platform, api_key(platform))

    def whole() -> str:
        ai.chat.completions.create(model=MOCK_MODEL, messages=PROMPT, max_tokens=5)
        return "whole"

    def streamed() -> str:
        chunks = list(
            ai.chat.completions.create(model=MOCK_MODEL, messages=PROMPT, max_tokens=8, stream=True)
        )
        assert len(chunks) == 8
        return "streamed"

    def abandoned() -> str:
        # 200 tokens, 8 s at 40 ms each; the client leaves after three.
        stream = ai.chat.completions.create(
            model=MOCK_MODEL, messages=PROMPT, max_tokens=200, stream=True
        )
        for seen, _ in enumerate(stream, start=1):
            if seen == 3:
                break
        stream.close()
        return "abandoned"

    jobs = [whole, streamed, abandoned] * 4
    with ThreadPoolExecutor(len(jobs)) as pool:
        done = [f.result() for f in [pool.submit(job) for job in jobs]]
    assert sorted(done) == sorted(j.__name__ for j in jobs)

    rows = wait_rows(platform, instance_id, len(jobs))
    assert len(rows) == len(jobs)
    left = [r for r in rows if r["status"] == "client_closed"]
    assert len(left) == 4
    assert all(r["status"] == "success" for r in rows if r not in left)
    # The engine stopped each stream its client left: it runs nothing any more, and the
    # only answers it sent to their end are the eight that were read whole.
    wait_until(
        lambda: engine_metrics(platform, instance_id)["vllm:num_requests_running"] == 0,
        60,
        "the engine stopped generating for the clients that left",
    )
    assert engine_metrics(platform, instance_id)["mock:responses_completed_total"] == 8
    for row in left:
        # The prompt is known from the engine's running usage; what was generated
        # before the stop is metered: at least what the client read, not all 200.
        assert row["stream"] and row["prompt_tokens"] == 5
        assert 3 <= row["completion_tokens"] < 200, row
    prompt, generated = engine_counts(platform, instance_id)
    assert sum(r["prompt_tokens"] for r in rows) == prompt == 5 * len(jobs)
    assert sum(r["completion_tokens"] for r in rows) == generated


def test_postgresql_away_for_ten_seconds_under_load_loses_no_usage_record(
    platform: Platform,
) -> None:
    instance_id = platform.deploy()["id"]
    platform.wait_status(instance_id, "ready")
    key = api_key(platform)
    # A second api whose only way to PostgreSQL is a link this test can cut.
    database = urlsplit(platform.env["DATABASE_URL"])
    link = CuttableLink(database.hostname or "127.0.0.1", database.port or 5432)
    port = free_port()
    gateway = ServiceProcess(
        "inventiv_api",
        port,
        {
            **platform.env,
            "API_PORT": str(port),
            "DATABASE_URL": link.url_for(platform.env["DATABASE_URL"]),
        },
        platform.tmp / "api-behind-link.log",
    )
    try:
        gateway.wait_ready()
        ai = client(platform, key).with_options(base_url=f"{gateway.base_url}/v1")
        assert [m.id for m in ai.models.list()] == [MOCK_MODEL]

        stop = threading.Event()
        served: list[datetime] = []
        failures: list[str] = []

        def load(stream: bool) -> None:
            while not stop.is_set():
                try:
                    if stream:
                        list(
                            ai.chat.completions.create(
                                model=MOCK_MODEL, messages=PROMPT, max_tokens=4, stream=True
                            )
                        )
                    else:
                        ai.chat.completions.create(model=MOCK_MODEL, messages=PROMPT, max_tokens=3)
                except Exception as exc:
                    failures.append(repr(exc))
                else:
                    served.append(datetime.now(UTC))

        threads = [threading.Thread(target=load, args=(i % 2 == 0,)) for i in range(4)]
        started_at = datetime.now(UTC)
        for thread in threads:
            thread.start()

        def served_since(moment: datetime, count: int) -> bool:
            assert failures == [], failures
            return len([t for t in served if t > moment]) >= count

        wait_until(lambda: served_since(started_at, 20), 60, "answers served under load")
        link.cut()
        cut_at, cut_clock = datetime.now(UTC), time.monotonic()
        # Away for the ten seconds the scenario is about, serving all along from its
        # caches: fifty answers at least, however slowly a loaded machine gives them.
        wait_until(
            lambda: served_since(cut_at, 50) and time.monotonic() - cut_clock >= 10,
            120,
            "fifty answers served while PostgreSQL is away",
        )
        # Still away: what was served meanwhile waits in the api, not in the table.
        stored = [r for r in usage_rows(platform, instance_id) if r["occurred_at"] > cut_at]
        link.restore()
        restored_at = datetime.now(UTC)
        wait_until(
            lambda: served_since(restored_at, 20), 60, "answers served once PostgreSQL is back"
        )
        stop.set()
        for thread in threads:
            thread.join(60)

        assert [t.name for t in threads if t.is_alive()] == []
        assert failures == []
        assert stored == []
        rows = wait_rows(platform, instance_id, len(served))
    finally:
        gateway.stop()
        link.close()
    assert len(rows) == len(served)
    assert all(r["status"] == "success" for r in rows)
    prompt, generated = engine_counts(platform, instance_id)
    assert sum(r["prompt_tokens"] for r in rows) == prompt
    assert sum(r["completion_tokens"] for r in rows) == generated
