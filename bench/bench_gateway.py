"""Our gateway against the mock engine called directly and against the LiteLLM proxy,
in one run, with the same mock engine, the same load tool and the same concurrency.

Our gateway keeps auth (an API key), routing and metering on. LiteLLM runs as its own
proxy (one worker, a master key, no database), at the exact version pinned in
bench/litellm-constraints.txt, from its own virtual environment under .bench/.

Like with like:
- Only 2xx answers count. Any other answer, socket error or failed stream fails the
  verdict, and is printed per case.
- Both proxies log as a production operator runs them: WARNING, no access log line per
  request (our LOG_LEVEL=WARNING; LiteLLM's LITELLM_LOG=WARNING, as its production guide
  sets it). The bytes each wrote to its log while measured are printed.
- Cores: the engine and wrk share core 0; both proxies are pinned to core 1 and stay up
  the whole run, so the proxy not under test idles there beside the one measured: the
  CPU time it used meanwhile is printed, its share of core 1. (Freezing it instead was
  tried: with core 1 fully idle, the direct engine on core 0 ran 3 to 6 times slower on
  this virtual machine, which inflated the baseline the added latencies are taken from.)
  The machine is shared: processes that are not ours may run on either core, which is
  why the cases are measured in rounds, in an order that alternates, and the medians
  are compared, with each round's figure printed.

Measures: non-streaming chat 2xx answers/s at 32 connections; added p50/p99 latency of
sequential requests; added time to first byte of a stream; resident memory.
Targets: >= 20x LiteLLM's requests/s, added p50 <= 1 ms, resident memory <= 150 MB.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import psutil

from bench import litellm_proxy
from bench.gateway_report import report
from bench.loadgen import LoadResult, wrk
from inventiv_common import instance_secrets
from inventiv_common.crypto import KeyRing
from inventiv_common.db.engine import make_engine, make_session_factory
from inventiv_common.db.models import Instance
from inventiv_common.net import free_port

ROOT = Path(__file__).resolve().parents[1]
MODEL = "inventiv/mock-echo"
SECRET = secrets.token_urlsafe(32)  # the api and this script seal and open with it
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 16}
ENGINE_CPU, PROXY_CPU = "0", "1"
ROUNDS = int(os.environ.get("BENCH_GATEWAY_ROUNDS", "3"))
TTFB_SAMPLES = 100  # per round


def pinned(cpu: str, command: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", cpu, *command]
    return command


def wait_http(url: str, timeout: float = 120.0, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2, headers=headers).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def first_bytes_ms(url: str, headers: dict[str, str], failures: dict[str, int]) -> list[float]:
    """Times to the first byte of streamed chat answers, requests one at a time; a stream
    that is not a 2xx, or breaks, is counted in `failures` and has no time."""
    times = []
    with httpx.Client(timeout=30) as client:
        for _ in range(TTFB_SAMPLES):
            started = time.perf_counter()
            try:
                with client.stream(
                    "POST", url, json={**CHAT, "stream": True}, headers=headers
                ) as response:
                    pieces = response.iter_raw()
                    next(pieces)
                    elapsed = (time.perf_counter() - started) * 1000
                    for _ in pieces:
                        pass
            except (httpx.HTTPError, StopIteration) as exc:
                kind = f"stream {type(exc).__name__}"
                failures[kind] = failures.get(kind, 0) + 1
                continue
            if 200 <= response.status_code < 300:
                times.append(elapsed)
            else:
                kind = f"stream HTTP {response.status_code}"
                failures[kind] = failures.get(kind, 0) + 1
    return times


class Case:
    """One target measured in every round: its figures per round, its failures in all."""

    def __init__(
        self,
        name: str,
        url: str,
        headers: dict[str, str],
        process: subprocess.Popen[bytes] | None = None,
        log: Path | None = None,
    ) -> None:
        self.name, self.url, self.headers, self.log = name, url, headers, log
        self.process = psutil.Process(process.pid) if process else None
        self.loads: list[LoadResult] = []
        self.sequentials: list[LoadResult] = []
        self.warmups: list[LoadResult] = []
        self.ttfb_ms: list[float] = []
        self.stream_failures: dict[str, int] = {}
        self.rss_mb: list[float] = []
        self.log_bytes = 0
        self.measured_s = 0.0
        self.idle_cpu_s = 0.0  # CPU this proxy used on core 1 while another case was measured

    def tree(self) -> list[psutil.Process]:
        if self.process is None or not self.process.is_running():
            return []
        return [self.process, *self.process.children(recursive=True)]

    def cpu_s(self) -> float:
        return sum(sum(p.cpu_times()[:2]) for p in self.tree())

    def measure_round(self) -> None:
        started = time.monotonic()
        chat_url = f"{self.url}/v1/chat/completions"
        log_before = self.log.stat().st_size if self.log else 0
        self.warmups.append(
            wrk(chat_url, method="POST", body=CHAT, headers=self.headers, duration_s=2, cpu=0)
        )
        self.loads.append(wrk(chat_url, method="POST", body=CHAT, headers=self.headers, cpu=0))
        self.sequentials.append(
            wrk(chat_url, method="POST", body=CHAT, headers=self.headers, connections=1, cpu=0)
        )
        self.ttfb_ms.extend(first_bytes_ms(chat_url, self.headers, self.stream_failures))
        if self.process:
            self.rss_mb.append(
                sum(p.memory_info().rss for p in self.tree()) / 2**20,
            )
        if self.log:
            self.log_bytes += self.log.stat().st_size - log_before
        self.measured_s += time.monotonic() - started

    # Medians over rounds: one noisy round on a shared machine moves none of them.
    @property
    def requests_per_s(self) -> float:
        return statistics.median(r.requests_per_s for r in self.loads)

    @property
    def p50_ms(self) -> float:
        return statistics.median(r.latency_p50_ms for r in self.sequentials)

    @property
    def p99_ms(self) -> float:
        return statistics.median(r.latency_p99_ms for r in self.sequentials)

    @property
    def ttfb_median_ms(self) -> float:
        return statistics.median(self.ttfb_ms) if self.ttfb_ms else float("nan")

    def failures(self) -> dict[str, int]:
        counted = dict(self.stream_failures)
        for result in [*self.warmups, *self.loads, *self.sequentials]:
            for status, n in result.other_statuses.items():
                counted[f"HTTP {status}"] = counted.get(f"HTTP {status}", 0) + n
            for kind, n in result.socket_errors.items():
                if n:
                    counted[f"socket {kind}"] = counted.get(f"socket {kind}", 0) + n
        return counted


async def prepare_database(admin_url: str, name: str) -> str:
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


async def add_ready_instance(database_url: str, org: uuid.UUID) -> tuple[uuid.UUID, str]:
    """A ready instance of the mock model in `org`, with its sealed engine key."""
    engine = make_engine(database_url, pool_size=1)
    try:
        async with make_session_factory(engine)() as session:
            conn = await session.connection()
            ids = (
                await conn.exec_driver_sql(
                    "SELECT t.provider_id, t.id, z.id, m.id FROM instance_types t "
                    "JOIN instance_type_zones tz ON tz.instance_type_id = t.id "
                    "JOIN zones z ON z.id = tz.zone_id, models m "
                    "WHERE t.code = 'MOCK-GPU-S' AND m.model_id = 'inventiv/mock-echo'"
                )
            ).one()
            instance = Instance(
                organization_id=org,
                provider_id=ids[0],
                instance_type_id=ids[1],
                zone_id=ids[2],
                model_id=ids[3],
                status="ready",
                ip_address="127.0.0.1",
            )
            session.add(instance)
            await session.flush()
            key = instance_secrets.ensure(instance, KeyRing(SECRET)).engine_key
            await session.commit()
            return instance.id, key
    finally:
        await engine.dispose()


async def set_engine_port(database_url: str, instance_id: uuid.UUID, port: int) -> None:
    conn = await asyncpg.connect(database_url)
    await conn.execute(
        "UPDATE instances SET worker_engine_port = $1 WHERE id = $2", port, instance_id
    )
    await conn.close()


async def drop_database(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


def main() -> None:
    litellm_version = litellm_proxy.ensure_installed()
    admin_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    name = f"bench_gateway_{uuid.uuid4().hex[:8]}"
    database_url = asyncio.run(prepare_database(admin_url, name))
    logs = Path(tempfile.mkdtemp(prefix="bench-gateway-logs-"))
    processes: list[subprocess.Popen[bytes]] = []
    cases: list[Case] = []

    def start(
        command: list[str], env: dict[str, str] | None = None, log: Path | None = None
    ) -> subprocess.Popen[bytes]:
        out = log.open("ab") if log else subprocess.DEVNULL
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        processes.append(process)
        return process

    try:
        api_port, engine_port, litellm_port = free_port(), free_port(), free_port()
        password = uuid.uuid4().hex
        api_env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "REDIS_CHANNEL_PREFIX": f"bench-{uuid.uuid4().hex[:6]}:",
            "INVENTIV_ENV": "test",
            "API_PORT": str(api_port),
            "PROVIDER_SETTINGS_KEY": SECRET,
            "DEFAULT_ADMIN_PASSWORD": password,
            "AUTO_SEED_CATALOG": "1",
            "LOG_LEVEL": litellm_proxy.LOG_LEVEL,  # the level LiteLLM is given too
            "ORCHESTRATOR_URL": "http://127.0.0.1:9",
        }
        api_log = logs / "api.log"
        api_command = [sys.executable, "-m", "inventiv_api"]
        api = start(pinned(PROXY_CPU, api_command), api_env, api_log)
        api_url = f"http://127.0.0.1:{api_port}"
        wait_http(f"{api_url}/readyz")
        with httpx.Client(base_url=api_url, headers={"Origin": api_url}, timeout=30) as admin:
            login = admin.post("/auth/login", json={"username": "admin", "password": password})
            login.raise_for_status()
            org = uuid.UUID(admin.get("/auth/me").json()["current_organization_id"])
            key = admin.post("/api_keys", json={"name": "bench"}).json()["key"]
        instance_id, engine_key = asyncio.run(add_ready_instance(database_url, org))
        engine_command = [sys.executable, "-m", "inventiv_worker.mock_engine"]
        engine_command += ["--port", str(engine_port), "--model", MODEL, "--api-key", engine_key]
        start(pinned(ENGINE_CPU, engine_command))
        engine_url = f"http://127.0.0.1:{engine_port}"
        wait_http(f"{engine_url}/health")
        asyncio.run(set_engine_port(database_url, instance_id, engine_port))
        ours_headers = {"Authorization": f"Bearer {key}"}
        deadline = time.monotonic() + 10
        while MODEL not in httpx.get(f"{api_url}/v1/models", headers=ours_headers).text:
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway never routed to the instance")
            time.sleep(0.2)

        config = logs / "litellm.yaml"
        litellm_proxy.write_config(
            config, model=MODEL, engine_url=engine_url, engine_key=engine_key
        )
        litellm_log = logs / "litellm.log"
        litellm = start(
            pinned(PROXY_CPU, litellm_proxy.command(config, litellm_port)),
            litellm_proxy.environment(),
            litellm_log,
        )
        litellm_url = f"http://127.0.0.1:{litellm_port}"
        wait_http(f"{litellm_url}/health/liveliness", timeout=180)

        direct_headers = {"Authorization": f"Bearer {engine_key}"}
        litellm_headers = {"Authorization": f"Bearer {litellm_proxy.MASTER_KEY}"}
        cases += [
            Case("mock engine, direct", engine_url, direct_headers),
            Case("inventiv gateway", api_url, ours_headers, api, api_log),
            Case(f"LiteLLM {litellm_version}", litellm_url, litellm_headers, litellm, litellm_log),
        ]
        orders = []
        for round_index in range(ROUNDS):
            order = cases if round_index % 2 == 0 else cases[::-1]
            orders.append(" > ".join(case.name.split(",")[0] for case in order))
            for case in order:
                others = [other for other in cases if other is not case]
                before = [other.cpu_s() for other in others]
                case.measure_round()
                for other, cpu_before in zip(others, before, strict=True):
                    other.idle_cpu_s += other.cpu_s() - cpu_before
        report(cases, orders)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        asyncio.run(drop_database(admin_url, name))
        shutil.rmtree(logs, ignore_errors=True)
