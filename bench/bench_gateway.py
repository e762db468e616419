"""Our gateway against the mock engine called directly and against the LiteLLM proxy,
in one run, with the same mock engine, the same load tool and the same concurrency.

Our gateway keeps auth (an API key), routing and metering on. LiteLLM runs as its own
proxy (one worker, a master key, no database) from its own virtual environment under
.bench/ (installed from PyPI on first use). The proxy under test has core 1 to itself;
the engine and wrk share core 0, the same for every case.

Measures: non-streaming chat requests/s at 32 connections; added p50/p99 latency for
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
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import psutil

from bench.loadgen import LoadResult, wrk
from inventiv_common import instance_secrets
from inventiv_common.crypto import KeyRing
from inventiv_common.db.engine import make_engine, make_session_factory
from inventiv_common.db.models import Instance
from inventiv_common.net import free_port

ROOT = Path(__file__).resolve().parents[1]
LITELLM_VENV = Path(os.environ.get("BENCH_LITELLM_VENV", ROOT / ".bench" / "litellm"))
MODEL = "inventiv/mock-echo"
SECRET = secrets.token_urlsafe(32)  # the api and this script seal and open with it
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 16}
TARGETS = {"rps_ratio": 20.0, "added_p50_ms": 1.0, "rss_mb": 150.0}
ENGINE_CPU, PROXY_CPU = "0", "1"


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


def first_byte_ms(url: str, headers: dict[str, str], samples: int = 200) -> float:
    """Median time to the first byte of a streamed chat answer, requests one at a time."""
    times = []
    with httpx.Client(timeout=30) as client:
        for _ in range(samples):
            started = time.perf_counter()
            with client.stream(
                "POST", url, json={**CHAT, "stream": True}, headers=headers
            ) as response:
                pieces = response.iter_raw()
                next(pieces)
                times.append((time.perf_counter() - started) * 1000)
                for _ in pieces:
                    pass
    return statistics.median(times)


def rss_mb(pid: int) -> float:
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20


def litellm_binary() -> Path:
    binary = LITELLM_VENV / "bin" / "litellm"
    if not binary.exists():
        print("installing the LiteLLM proxy into .bench/litellm (first run only) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        subprocess.run(
            [str(LITELLM_VENV / "bin" / "pip"), "install", "--quiet", "litellm[proxy]"],
            check=True,
        )
    return binary


class Case:
    def __init__(self, name: str, url: str, headers: dict[str, str], pid: int | None) -> None:
        self.name, self.url, self.headers, self.pid = name, url, headers, pid
        self.load: LoadResult | None = None
        self.sequential: LoadResult | None = None
        self.ttfb_ms = 0.0
        self.rss_mb: float | None = None

    def measure(self) -> None:
        chat_url = f"{self.url}/v1/chat/completions"
        wrk(chat_url, method="POST", body=CHAT, headers=self.headers, duration_s=2, cpu=0)
        self.load = wrk(chat_url, method="POST", body=CHAT, headers=self.headers, cpu=0)
        self.sequential = wrk(
            chat_url, method="POST", body=CHAT, headers=self.headers, connections=1, cpu=0
        )
        self.ttfb_ms = first_byte_ms(chat_url, self.headers)
        self.rss_mb = rss_mb(self.pid) if self.pid else None


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


def main() -> None:
    admin_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    name = f"bench_gateway_{uuid.uuid4().hex[:8]}"
    database_url = asyncio.run(prepare_database(admin_url, name))
    processes: list[subprocess.Popen[bytes]] = []

    def start(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
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
            "LOG_LEVEL": "WARNING",
            "ORCHESTRATOR_URL": "http://127.0.0.1:9",
        }
        api = start(pinned(PROXY_CPU, [sys.executable, "-m", "inventiv_api"]), api_env)
        api_url = f"http://127.0.0.1:{api_port}"
        wait_http(f"{api_url}/readyz")
        with httpx.Client(base_url=api_url, headers={"Origin": api_url}, timeout=30) as admin:
            login = admin.post("/auth/login", json={"username": "admin", "password": password})
            login.raise_for_status()
            org = uuid.UUID(admin.get("/auth/me").json()["current_organization_id"])
            key = admin.post("/api_keys", json={"name": "bench"}).json()["key"]
        instance_id, engine_key = asyncio.run(add_ready_instance(database_url, org))
        start(
            pinned(
                ENGINE_CPU,
                [
                    sys.executable,
                    "-m",
                    "inventiv_worker.mock_engine",
                    "--port",
                    str(engine_port),
                    "--model",
                    MODEL,
                    "--api-key",
                    engine_key,
                ],
            )
        )
        engine_url = f"http://127.0.0.1:{engine_port}"
        wait_http(f"{engine_url}/health")
        asyncio.run(set_engine_port(database_url, instance_id, engine_port))
        ours_headers = {"Authorization": f"Bearer {key}"}
        deadline = time.monotonic() + 10
        while MODEL not in httpx.get(f"{api_url}/v1/models", headers=ours_headers).text:
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway never routed to the instance")
            time.sleep(0.2)

        config = ROOT / ".bench" / "litellm.yaml"
        config.parent.mkdir(exist_ok=True)
        config.write_text(
            "model_list:\n"
            f"  - model_name: {MODEL}\n"
            "    litellm_params:\n"
            f"      model: openai/{MODEL}\n"
            f"      api_base: {engine_url}/v1\n"
            f"      api_key: {engine_key}\n"
            "general_settings:\n"
            "  master_key: sk-bench-master\n"
        )
        litellm_env = {
            **os.environ,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download at start-up
            "LITELLM_TELEMETRY": "False",
        }
        litellm = start(
            pinned(
                PROXY_CPU,
                [
                    str(litellm_binary()),
                    "--config",
                    str(config),
                    "--port",
                    str(litellm_port),
                    "--num_workers",
                    "1",
                ],
            ),
            litellm_env,
        )
        litellm_url = f"http://127.0.0.1:{litellm_port}"
        wait_http(f"{litellm_url}/health/liveliness", timeout=180)

        cases = [
            Case(
                "mock engine, direct", engine_url, {"Authorization": f"Bearer {engine_key}"}, None
            ),
            Case("inventiv gateway", api_url, ours_headers, api.pid),
            Case(
                "LiteLLM proxy",
                litellm_url,
                {"Authorization": "Bearer sk-bench-master"},
                litellm.pid,
            ),
        ]
        for case in cases:
            case.measure()
        report(cases)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        asyncio.run(drop_database(admin_url, name))


async def drop_database(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


def report(cases: list[Case]) -> None:
    direct, ours, theirs = cases
    assert direct.load and ours.load and theirs.load
    assert direct.sequential and ours.sequential and theirs.sequential
    print("chat completions, 16 tokens; wrk on core 0 with the engine, the proxy on core 1")
    print(
        f"{'':22} {'req/s @32':>10} {'seq p50 ms':>11} {'seq p99 ms':>11} "
        f"{'TTFB ms':>8} {'RSS MB':>7} {'errors':>7}"
    )
    for case in cases:
        assert case.load and case.sequential
        rss = f"{case.rss_mb:7.0f}" if case.rss_mb else f"{'-':>7}"
        print(
            f"{case.name:22} {case.load.requests_per_s:10.0f} "
            f"{case.sequential.latency_p50_ms:11.2f} {case.sequential.latency_p99_ms:11.2f} "
            f"{case.ttfb_ms:8.2f} {rss} {case.load.errors + case.sequential.errors:7d}"
        )

    def added(case: Case) -> tuple[float, float, float]:
        assert case.sequential and direct.sequential
        return (
            case.sequential.latency_p50_ms - direct.sequential.latency_p50_ms,
            case.sequential.latency_p99_ms - direct.sequential.latency_p99_ms,
            case.ttfb_ms - direct.ttfb_ms,
        )

    ours_added, theirs_added = added(ours), added(theirs)
    ratio = ours.load.requests_per_s / max(theirs.load.requests_per_s, 1e-9)

    def verdict(ok: bool) -> str:
        return "meets" if ok else "MISSES"

    print()
    print(f"{'':34} {'ours':>9} {'LiteLLM':>9} {'ratio':>7} {'target':>8}")
    print(
        f"{'requests/s at 32 connections':34} {ours.load.requests_per_s:9.0f} "
        f"{theirs.load.requests_per_s:9.0f} {ratio:7.1f} {'>= 20x':>8}  "
        f"{verdict(ratio >= TARGETS['rps_ratio'])}"
    )
    print(
        f"{'added p50 latency, sequential (ms)':34} {ours_added[0]:9.2f} {theirs_added[0]:9.2f} "
        f"{theirs_added[0] / max(ours_added[0], 1e-3):7.1f} {'<= 1':>8}  "
        f"{verdict(ours_added[0] <= TARGETS['added_p50_ms'])}"
    )
    print(f"{'added p99 latency, sequential (ms)':34} {ours_added[1]:9.2f} {theirs_added[1]:9.2f}")
    print(f"{'added time to first byte (ms)':34} {ours_added[2]:9.2f} {theirs_added[2]:9.2f}")
    if ours.rss_mb and theirs.rss_mb:
        print(
            f"{'resident memory (MB)':34} {ours.rss_mb:9.0f} {theirs.rss_mb:9.0f} "
            f"{theirs.rss_mb / ours.rss_mb:7.1f} {'<= 150':>8}  "
            f"{verdict(ours.rss_mb <= TARGETS['rss_mb'])}"
        )
