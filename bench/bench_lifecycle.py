"""The control plane's lifecycle under load, with the Mock provider's simulated runtime
(no process per instance). The orchestrator runs as its own process on core 0; this
script plays the fleet of workers (registering and heartbeating over HTTP) on core 1.

1. 200 deployments at once, zero boot delay: provision-to-ready p50 / p99.
2. 2,000 workers heartbeating every 5 s: the orchestrator's CPU share of one core and
   the database writes per second (heartbeats are written in batches).
3. One full reconcile pass (the health loop's sweep) over 2,000 instances.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid

import asyncpg
import httpx
import psutil

from inventiv_api.gateway.upstream import UpstreamError, UpstreamPool
from inventiv_common.agent_checksum import expected_agent_checksum
from inventiv_common.bus import Envelope, EventBus
from inventiv_common.crypto import KeyRing
from inventiv_common.db.engine import make_engine, make_session_factory
from inventiv_common.db.models import Instance
from inventiv_common.db.seed import apply_sql_file, default_catalog_seed_path
from inventiv_common.instance_secrets import ensure as ensure_secrets
from inventiv_common.instance_secrets import open_secrets
from inventiv_common.messages import CMD_PROVISION
from inventiv_common.net import free_port
from inventiv_common.settings import DEV_SECRET_FALLBACK

DEPLOYMENTS = int(os.environ.get("BENCH_DEPLOYMENTS", "200"))
FLEET = int(os.environ.get("BENCH_FLEET", "2000"))
HEARTBEAT_S = 5.0
STEADY_S = float(os.environ.get("BENCH_STEADY_S", "30"))
HEARTBEAT_BODY = json.dumps(
    {
        "phase": "ready",
        "engine": {"healthy": True, "requests_running": 0, "requests_waiting": 0},
        "system": {"cpu_pct": 5.0, "memory_used_bytes": 1, "memory_total_bytes": 2},
        "gpus": [{"gpu_index": 0, "utilization_pct": 40.0, "memory_used_mb": 1000.0}],
    }
).encode()
TARGETS = {"ready_p99_s": 2.0, "cpu_share": 0.25, "pass_ms": 250.0}


class Fleet:
    """Simulated workers: register once, then heartbeat `ready` every HEARTBEAT_S."""

    def __init__(self, orchestrator: str, database_url: str) -> None:
        self.orchestrator = orchestrator
        self.database_url = database_url
        self.tokens: dict[uuid.UUID, str] = {}
        self.booting: dict[uuid.UUID, asyncio.Task[None]] = {}
        host, port = orchestrator.removeprefix("http://").split(":")
        # Requests go through the gateway's lean keep-alive client: a general client
        # library costs more CPU per request than the orchestrator it measures.
        self.host, self.port = host, int(port)
        self.beats = UpstreamPool()
        self.keyring = KeyRing(DEV_SECRET_FALLBACK)
        self.sent = 0
        self.errors = 0
        self.conn: asyncpg.Connection | None = None
        self.stop = asyncio.Event()
        self.asked: dict[uuid.UUID, float] = {}
        self.answered: dict[uuid.UUID, float] = {}

    async def register_new(self) -> int:
        """Start a worker for every newly booting instance; they register on their own.

        The fleet shares this machine with what it measures, so it stays lean: one
        plain query per poll, and the lean keep-alive client for every request."""
        if self.conn is None:
            self.conn = await asyncpg.connect(self.database_url)
        rows = [
            row
            for row in await self.conn.fetch(
                "SELECT id, created_at, bootstrap_secret_encrypted, engine_key_encrypted, "
                "secrets_key_id FROM instances WHERE provider_instance_id IS NOT NULL "
                "AND status IN ('booting', 'installing', 'starting')"
            )
            if row["id"] not in self.tokens and row["id"] not in self.booting
        ]

        async def register(row: asyncpg.Record) -> None:
            instance = Instance(
                id=row["id"],
                bootstrap_secret_encrypted=row["bootstrap_secret_encrypted"],
                engine_key_encrypted=row["engine_key_encrypted"],
                secrets_key_id=row["secrets_key_id"],
            )
            secret = open_secrets(instance, self.keyring).bootstrap_secret
            # When this simulated worker asked, from the deployment request: the part
            # of registration latency that is the fleet's, not the orchestrator's.
            created = row["created_at"].timestamp()
            self.asked[instance.id] = time.time() - created
            # What a real agent reports: its version and its own checksum.
            body = json.dumps(
                {
                    "instance_id": str(instance.id),
                    "agent_version": "bench",
                    "agent_checksum": expected_agent_checksum(),
                }
            ).encode()
            headers = [
                (b"authorization", f"Bearer {secret}".encode()),
                (b"content-type", b"application/json"),
            ]
            try:
                response = await self.beats.send(
                    self.host, self.port, "POST", "/internal/worker/register", headers, body
                )
                answer = await response.read()
            except UpstreamError:
                self.errors += 1  # a kept-alive connection closed under us: retried next round
                return
            finally:
                self.booting.pop(instance.id, None)
            if response.status == 200:
                self.answered[instance.id] = time.time() - created
                self.tokens[instance.id] = json.loads(answer)["token"]
                await self.beat(instance.id)

        # Workers boot independently: each registers as soon as its server exists.
        for row in rows:
            self.booting[row["id"]] = asyncio.create_task(register(row))
        return len(rows)

    async def beat(self, instance_id: uuid.UUID) -> None:
        headers = [
            (b"authorization", f"Bearer {self.tokens[instance_id]}".encode()),
            (b"content-type", b"application/json"),
        ]
        try:
            response = await self.beats.send(
                self.host, self.port, "POST", "/internal/worker/heartbeat", headers, HEARTBEAT_BODY
            )
            await response.read()
            status = response.status
        except UpstreamError:
            status = 0
        if status != 200:
            self.errors += 1
            return
        self.sent += 1

    async def heartbeat_forever(self) -> None:
        while not self.stop.is_set():
            ids = list(self.tokens)
            started = time.monotonic()
            # Spread the fleet over the interval, like real workers out of phase.
            for start in range(0, len(ids), 100):
                await asyncio.gather(*(self.beat(i) for i in ids[start : start + 100]))
                slot = HEARTBEAT_S * min(1.0, (start + 100) / max(len(ids), 1))
                await asyncio.sleep(max(0.0, started + slot - time.monotonic()))
            await asyncio.sleep(max(0.0, started + HEARTBEAT_S - time.monotonic()))


async def insert_instances(conn: asyncpg.Connection, org: uuid.UUID, count: int) -> None:
    """What POST /deployments writes: the instance, its sealed secrets, provisioning."""
    ids = await conn.fetchrow(
        "SELECT p.id AS provider, t.id AS type, z.id AS zone, m.id AS model FROM instance_types t "
        "JOIN providers p ON p.id = t.provider_id JOIN instance_type_zones tz ON tz.instance_type_id = t.id "
        "JOIN zones z ON z.id = tz.zone_id, models m "
        "WHERE t.code = 'MOCK-GPU-S' AND m.model_id = 'inventiv/mock-echo'"
    )
    keyring = KeyRing(DEV_SECRET_FALLBACK)
    rows = []
    for _ in range(count):
        instance = Instance(id=uuid.uuid4())
        ensure_secrets(instance, keyring)
        rows.append(
            (
                instance.id,
                org,
                ids["provider"],
                ids["type"],
                ids["zone"],
                ids["model"],
                instance.bootstrap_secret_encrypted,
                instance.engine_key_encrypted,
                instance.secrets_key_id,
                instance.bootstrap_secret_hash,
            )
        )
    await conn.executemany(
        "INSERT INTO instances (id, organization_id, provider_id, instance_type_id, zone_id, "
        "model_id, bootstrap_secret_encrypted, engine_key_encrypted, secrets_key_id, "
        "bootstrap_secret_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        rows,
    )


async def wait_ready(conn: asyncpg.Connection, fleet: Fleet, total: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await fleet.register_new()
        if await conn.fetchval("SELECT count(*) FROM instances WHERE status = 'ready'") >= total:
            return
        await asyncio.sleep(0.02)
    counts = await conn.fetch("SELECT status, count(*) FROM instances GROUP BY status")
    raise RuntimeError(f"instances did not all become ready: {[tuple(c) for c in counts]}")


async def run() -> None:
    admin_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    name = f"bench_lifecycle_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    database_url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    port = free_port()
    prefix = f"bench-{uuid.uuid4().hex[:6]}:"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_CHANNEL_PREFIX": prefix,
        "INVENTIV_ENV": "test",
        "ORCHESTRATOR_PORT": str(port),
        "MOCK_RUNTIME": "simulated",
        "LOOP_INTERVAL_S": "0.5",
        "WORKER_HEARTBEAT_INTERVAL_S": str(HEARTBEAT_S),
        "HEARTBEAT_FLUSH_INTERVAL_S": "1",
        "LOG_LEVEL": "WARNING",
    }
    pinned = shutil.which("taskset") is not None and (os.cpu_count() or 1) > 1
    if pinned:
        # The fleet stands for workers on other machines: it keeps off the core the
        # orchestrator is measured on.
        os.sched_setaffinity(0, {1})
    command = [sys.executable, "-m", "inventiv_orchestrator"]
    if profile := os.environ.get("BENCH_PROFILE"):
        # Where the orchestrator's time goes: a cProfile dump, written when it stops.
        command = [sys.executable, "-m", "cProfile", "-o", profile, "-m", "inventiv_orchestrator"]
    if pinned:
        command = ["taskset", "-c", "0", *command]
    orchestrator = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    fleet = Fleet(url, database_url)
    conn = None
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                try:
                    if (await client.get(f"{url}/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        engine = make_engine(database_url, pool_size=2)
        await apply_sql_file(engine, default_catalog_seed_path())
        await engine.dispose()
        conn = await asyncpg.connect(database_url)
        org = await conn.fetchval(
            "INSERT INTO organizations (name, slug) VALUES ('Bench', 'bench') RETURNING id"
        )
        bus = EventBus(redis_url, channel_prefix=prefix)

        # 1. provision to ready (registered workers heartbeat from then on)
        beating = asyncio.create_task(fleet.heartbeat_forever())
        process = psutil.Process(orchestrator.pid)
        burst_cpu = sum(process.cpu_times()[:2])
        others = {"fleet (this script)": psutil.Process(), **_postgres_processes()}
        others_cpu = {name: _cpu(p) for name, p in others.items()}
        burst_started = time.monotonic()
        await insert_instances(conn, org, DEPLOYMENTS)
        await bus.publish(Envelope(type=CMD_PROVISION))
        await wait_ready(conn, fleet, DEPLOYMENTS, timeout=120)
        burst_s = time.monotonic() - burst_started
        burst_cpu = sum(process.cpu_times()[:2]) - burst_cpu
        others_cpu = {name: _cpu(p) - others_cpu[name] for name, p in others.items()}
        durations = [
            r["d"]
            for r in await conn.fetch(
                "SELECT extract(epoch FROM ready_at - created_at)::float AS d FROM instances WHERE status = 'ready'"
            )
        ]
        quantiles = statistics.quantiles(durations, n=100)
        p50, p99 = statistics.median(durations), quantiles[98]
        # Where the time goes: when each step was recorded, from the request.
        stages = {
            step: sorted(
                r["d"]
                for r in await conn.fetch(
                    "SELECT extract(epoch FROM (s->>'at')::timestamptz - i.created_at)::float AS d "
                    "FROM instances i, jsonb_array_elements(i.progress_steps) s "
                    "WHERE s->>'step' = $1",
                    step,
                )
            )
            for step in ("provider_create", "agent_registered", "ready")
        }

        burst_asked, burst_answered = dict(fleet.asked), dict(fleet.answered)

        if os.environ.get("BENCH_TIMELINE"):
            # When each kind of state change happened, in 100 ms buckets from the burst.
            for row in await conn.fetch(
                "SELECT a.instance_status_after AS s, "
                "floor(extract(epoch FROM a.created_at - m.t0) * 10)::int AS b, count(*) AS n "
                "FROM action_logs a, (SELECT min(created_at) AS t0 FROM instances) m "
                "WHERE a.instance_status_after IS NOT NULL GROUP BY 1, 2 ORDER BY 2, 1"
            ):
                print(f"  t={row['b'] / 10:4.1f}s {row['s']:12} {row['n']}")

        # 2. a fleet of 2,000 heartbeating workers
        await insert_instances(conn, org, FLEET - DEPLOYMENTS)
        await bus.publish(Envelope(type=CMD_PROVISION))
        await wait_ready(conn, fleet, FLEET, timeout=300)
        await asyncio.sleep(HEARTBEAT_S)  # settle
        cpu_before = sum(process.cpu_times()[:2])
        stats_query = (
            "SELECT tup_inserted + tup_updated + tup_deleted AS writes, xact_commit "
            "FROM pg_stat_database WHERE datname = current_database()"
        )
        stats_before = await conn.fetchrow(stats_query)
        sent_before, started = fleet.sent, time.monotonic()
        await asyncio.sleep(STEADY_S)
        elapsed = time.monotonic() - started
        cpu_share = (sum(process.cpu_times()[:2]) - cpu_before) / elapsed
        stats_after = await conn.fetchrow(stats_query)
        writes_per_s = (stats_after["writes"] - stats_before["writes"]) / elapsed
        commits_per_s = (stats_after["xact_commit"] - stats_before["xact_commit"]) / elapsed
        beats_per_s = (fleet.sent - sent_before) / elapsed
        fleet.stop.set()
        beating.cancel()
        orchestrator.send_signal(signal.SIGINT)  # a clean stop (and the profile, if asked)
        orchestrator.wait(timeout=30)

        # 3. one full reconcile pass (health sweep), timed in this process against the same
        # database; the orchestrator is gone, so this process may use every core again.
        if pinned:
            os.sched_setaffinity(0, range(os.cpu_count() or 1))
        from inventiv_orchestrator.context import Context, build_providers
        from inventiv_orchestrator.loops.health import HealthLoop
        from inventiv_orchestrator.settings import OrchestratorSettings

        settings = OrchestratorSettings(
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            MOCK_RUNTIME="simulated",
            WORKER_HEARTBEAT_INTERVAL_S=HEARTBEAT_S,
        )
        engine = make_engine(database_url, pool_size=4)
        sessions = make_session_factory(engine)
        ctx = Context(
            settings,
            sessions,
            bus,
            KeyRing(DEV_SECRET_FALLBACK),
            build_providers(settings, sessions),
            httpx.AsyncClient(),
        )
        # Planner statistics, as autovacuum would have gathered them on a running system
        # (this bench is younger than its one-minute nap). Without them PostgreSQL reads
        # the whole table for every page of the pass instead of walking the primary key.
        await conn.execute("ANALYZE instances")
        loop = HealthLoop(ctx)
        passes = []
        for _ in range(5):
            await conn.execute("UPDATE instances SET worker_last_heartbeat = now()")
            t0 = time.perf_counter()
            handled = await loop.sweep()
            passes.append((time.perf_counter() - t0) * 1000)
        await engine.dispose()
        await bus.close()

        def verdict(ok: bool) -> str:
            return "meets" if ok else "MISSES"

        print(f"{'measure':44} {'ours':>10} {'target':>10}")
        print(f"{f'provision-to-ready p50 (s), {DEPLOYMENTS} at once':44} {p50:10.2f} {'':>10}")
        print(
            f"{'  orchestrator CPU during the burst (s / s)':44} {burst_cpu:10.2f} {burst_s:10.2f}"
        )
        print(
            f"{'  fleet, PostgreSQL CPU in the burst (s)':44} "
            f"{others_cpu['fleet (this script)']:10.2f} {others_cpu.get('postgres', 0.0):10.2f}"
        )
        stages = {
            "provider_create": stages["provider_create"],
            "fleet asked to register": sorted(burst_asked.values()),
            "registration answered": sorted(burst_answered.values()),
            **{k: v for k, v in stages.items() if k != "provider_create"},
        }
        for step, times in stages.items():
            if times:
                print(
                    f"{f'  {step} reached, p50 / p99 (s)':44} {statistics.median(times):10.2f} "
                    f"{times[min(len(times) - 1, int(len(times) * 0.99))]:10.2f}"
                )
        print(
            f"{'provision-to-ready p99 (s), 200 at once':44} {p99:10.2f} {TARGETS['ready_p99_s']:10.2f}  {verdict(p99 <= TARGETS['ready_p99_s'])}"
        )
        print(
            f"{f'heartbeats received per s ({FLEET} workers)':44} {beats_per_s:10.0f}  ({fleet.errors} client errors)"
        )
        print(
            f"{'orchestrator CPU, share of one core':44} {cpu_share:10.2f} {TARGETS['cpu_share']:10.2f}  {verdict(cpu_share <= TARGETS['cpu_share'])}"
        )
        print(f"{'database rows written per s':44} {writes_per_s:10.0f}")
        print(f"{'database commits per s':44} {commits_per_s:10.1f}")
        print(
            f"{f'full health pass over {FLEET} (ms, median)':44} {statistics.median(passes):10.0f} {TARGETS['pass_ms']:10.0f}  {verdict(statistics.median(passes) <= TARGETS['pass_ms'])}  ({handled} instances)"
        )
    finally:
        fleet.stop.set()
        for task in fleet.booting.values():
            task.cancel()
        if "beating" in locals():
            beating.cancel()
        await fleet.beats.close()
        if fleet.conn is not None:
            await fleet.conn.close()
        if orchestrator.poll() is None:
            orchestrator.kill()
        if conn is not None:
            await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _postgres_processes() -> dict[str, psutil.Process]:
    """The PostgreSQL server's processes, when they run on this machine."""
    names = ("postgres", "postmaster")
    for process in psutil.process_iter(["name"]):
        try:
            if process.info["name"] in names and process.parent().name() not in names:
                return {"postgres": process}  # the postmaster: its children are the backends
        except (psutil.Error, AttributeError):
            continue
    return {}


def _cpu(process: psutil.Process) -> float:
    """CPU seconds of a process, and for PostgreSQL's postmaster, of all its backends."""
    try:
        if process.name() in ("postgres", "postmaster") and process.pid != os.getpid():
            family = [process, *process.children(recursive=True)]
            return sum(sum(p.cpu_times()[:2]) for p in family if p.is_running())
        return sum(process.cpu_times()[:2])
    except psutil.Error:
        return 0.0


def main() -> None:
    asyncio.run(run())
