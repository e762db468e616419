"""The gateway SIGKILLed under load, again and again, and restarted each time: every
answer a client received in full is metered exactly once. Real processes (the api
serving /v1 is killed, the platform's api, orchestrator, worker agent and mock engine
live on); the official `openai` client.

Each answer names its usage record (x-request-id). Compared: the answers the clients
received whole (a JSON answer, or a stream read to the end of its body), the usage rows
in PostgreSQL, and the responses the engine wrote to their end. Every whole answer has
exactly one row (none lost, none doubled, and the running totals agree). A few more rows
may exist, and a few more engine responses: the answers being sent when the gateway
died, metered just before their end left (the gateway errs on the side of the work the
engine did), at most one per client per kill.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import threading
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import openai
import pytest

from inventiv_common.net import free_port
from tests.lifecycle.conftest import Platform
from tests.lifecycle.test_gateway_openai import api_key, client, engine_port
from tests.support.mock_engine import MOCK_MODEL
from tests.support.processes import ServiceProcess

try:  # the transport the `openai` client reads a raw stream with
    import httpx2

    TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, httpx2.HTTPError)
except ImportError:  # an `openai` before 3 reads with httpx itself
    TRANSPORT_ERRORS = (httpx.HTTPError,)

KILLS = 6
CLIENTS = 8
PROMPT = [{"role": "user", "content": "count every token"}]


class Load:
    """CLIENTS threads asking the gateway, whole answers counted; errors (the gateway
    dead or not back yet) are expected and retried."""

    def __init__(self, ai: openai.OpenAI) -> None:
        self.ai = ai
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.whole = 0
        self.request_ids: set[str] = set()
        self.failed = 0
        self.unexpected: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(CLIENTS)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.whole < count:
            assert time.monotonic() < deadline, f"{self.whole} answers, waiting for {count}"
            assert not self.unexpected, self.unexpected
            time.sleep(0.02)

    def _run(self, index: int) -> None:
        while not self.stop.is_set():
            try:
                request_id = self._ask(stream=index % 2 == 0)
            except (openai.OpenAIError, *TRANSPORT_ERRORS):
                with self.lock:
                    self.failed += 1
                self.stop.wait(0.05)
            except Exception as exc:
                self.unexpected.append(repr(exc))
                return
            else:
                with self.lock:
                    self.whole += 1
                    self.request_ids.add(request_id)

    def _ask(self, *, stream: bool) -> str:
        """One whole answer; the id of its usage record."""
        if not stream:
            raw = self.ai.chat.completions.with_raw_response.create(
                model=MOCK_MODEL, messages=PROMPT, max_tokens=8
            )
            answer = raw.parse()
            assert answer.usage is not None and answer.usage.completion_tokens == 8
            return raw.headers["x-request-id"]
        # To the end of the body: a stream cut by the kill raises here, whole or not.
        with self.ai.chat.completions.with_streaming_response.create(
            model=MOCK_MODEL, messages=PROMPT, max_tokens=8, stream=True
        ) as response:
            body = b"".join(response.iter_bytes())
        assert body.endswith(b"data: [DONE]\n\n"), body[-200:]
        return response.headers["x-request-id"]


def database(platform: Platform, query: str, *args: object) -> list[asyncpg.Record]:
    async def fetch() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(platform.env["DATABASE_URL"])
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return asyncio.run(fetch())


def usage_rows(platform: Platform) -> list[asyncpg.Record]:
    return database(platform, "SELECT request_id, status FROM finops.inference_usage")


def engine_completed(platform: Platform, instance_id: str) -> int:
    port = asyncio.run(engine_port(platform, instance_id))
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics").text.splitlines():
        if line.startswith("mock:responses_completed_total{"):
            return int(float(line.rsplit(" ", 1)[1]))
    raise AssertionError("the engine does not count its completed responses")


def adopted(log: Path) -> int:
    """Records the gateway's meter adopted from the journal, as its log says."""
    total = 0
    for line in log.read_text(errors="replace").splitlines():
        if "adopted from the journal" in line:
            total += json.loads(line)["records"]
    return total


@pytest.mark.platform_env(MOCK_ENGINE_FLAGS="--token-delay-ms 5")
def test_the_gateway_sigkilled_under_load_meters_every_whole_answer_once(
    platform: Platform,
) -> None:
    instance_id = platform.deploy()["id"]
    platform.wait_status(instance_id, "ready")
    port = free_port()
    journal = platform.tmp / "meter-journal"
    env = {**platform.env, "API_PORT": str(port), "METER_JOURNAL_DIR": str(journal)}
    logs: list[Path] = []

    def start_gateway() -> ServiceProcess:
        logs.append(platform.tmp / f"gateway-{len(logs)}.log")
        process = ServiceProcess("inventiv_api", port, env, logs[-1])
        process.wait_ready()
        return process

    gateway = start_gateway()
    ai = client(platform, api_key(platform)).with_options(
        base_url=f"{gateway.base_url}/v1", timeout=30
    )
    moments = random.Random()  # any moment must do: a new draw each run
    try:
        with Load(ai) as load:
            for _ in range(KILLS):
                load.wait_for(load.whole + 40)  # under load since the last start
                # Not a wait for anything: the kill's moment within the load, drawn.
                time.sleep(moments.uniform(0, 0.3))
                gateway.proc.send_signal(signal.SIGKILL)
                gateway.proc.wait(10)
                gateway.stop()
                gateway = start_gateway()
            load.wait_for(load.whole + 40)
        # Everything the clients received is written within a few passes of the meter...
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if load.request_ids <= {r["request_id"] for r in usage_rows(platform)}:
                break
            time.sleep(0.2)
    finally:
        gateway.stop()
    # ...and nothing more comes once the last gateway has stopped.
    rows = usage_rows(platform)
    (totals,) = database(
        platform,
        "SELECT total_requests FROM instance_request_metrics WHERE instance_id = $1",
        uuid.UUID(instance_id),
    )
    engine = engine_completed(platform, instance_id)
    replayed = sum(adopted(log) for log in logs)
    metered = [r["request_id"] for r in rows]
    print(
        f"\n{KILLS} SIGKILLs under load by {CLIENTS} clients: "
        f"answers received whole {load.whole}, usage rows {len(rows)} "
        f"({len(set(metered) - load.request_ids)} of answers cut by a kill), "
        f"running total {totals['total_requests']}, responses the engine completed {engine} "
        f"({engine - len(rows)} in flight at a kill), records replayed from the journal "
        f"{replayed}, client errors while the gateway was down {load.failed}"
    )
    assert not load.unexpected, load.unexpected
    assert len(load.request_ids) == load.whole  # one id per answer
    assert load.request_ids - set(metered) == set()  # none lost
    assert len(metered) == len(set(metered))  # none doubled
    assert len(rows) - load.whole <= CLIENTS * KILLS  # the rest were cut by a kill
    assert {r["status"] for r in rows} == {"success"}
    assert totals["total_requests"] == len(rows)
    assert len(rows) <= engine <= len(rows) + CLIENTS * KILLS
    # The kills did catch records taken but not yet written (else this proves nothing).
    assert replayed > 0
    # Stopped cleanly, the last gateway leaves an empty journal.
    assert [p.name for p in journal.rglob("*") if p.is_file()] == []
