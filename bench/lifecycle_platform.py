"""What the lifecycle benchmark runs against: the real api and orchestrator as processes,
deployments asked through `POST /deployments`, a fleet of simulated workers that
register and heartbeat over HTTP, and a recorder of the orchestrator's own health passes
as its `/admin/status` reports them."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

from inventiv_api.gateway.upstream import UpstreamError, UpstreamPool
from inventiv_common.agent_checksum import expected_agent_checksum
from inventiv_common.crypto import KeyRing
from inventiv_common.db.models import Instance
from inventiv_common.instance_secrets import open_secrets
from inventiv_common.net import free_port
from inventiv_common.settings import DEV_SECRET_FALLBACK

# Deployment requests in flight at once: a console or a script of an operator, not a flood.
DEPLOY_CONCURRENCY = 16


def _beat(phase: str) -> bytes:
    return json.dumps(
        {
            "phase": phase,
            "engine": {"healthy": phase == "ready", "requests_running": 0, "requests_waiting": 0},
            "system": {"cpu_pct": 5.0, "memory_used_bytes": 1, "memory_total_bytes": 2},
            "gpus": [{"gpu_index": 0, "utilization_pct": 40.0, "memory_used_mb": 1000.0}],
        }
    ).encode()


class ControlPlane:
    """The api and the orchestrator, each its own process on one fresh database. The
    orchestrator is pinned to core 0; the api joins this script on core 1 (it stands
    beside the workers' traffic, not inside what is measured)."""

    def __init__(self, database_url: str, redis_url: str, heartbeat_s: float) -> None:
        self.pinned = shutil.which("taskset") is not None and (os.cpu_count() or 1) > 1
        self.home = Path(tempfile.mkdtemp(prefix="bench-lifecycle-"))
        api_port, orch_port = free_port(), free_port()
        self.api_url = f"http://127.0.0.1:{api_port}"
        self.orchestrator_url = f"http://127.0.0.1:{orch_port}"
        self.admin_password = secrets.token_urlsafe(16)
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.endswith(("_URL", "_FILE", "_PORT")) and k not in {"INVENTIV_ENV"}
        }
        self.env = {
            **inherited,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "REDIS_CHANNEL_PREFIX": f"bench-{uuid.uuid4().hex[:6]}:",
            "INVENTIV_ENV": "test",
            "INVENTIV_HOME": str(self.home),
            "API_PORT": str(api_port),
            "ORCHESTRATOR_PORT": str(orch_port),
            "ORCHESTRATOR_URL": self.orchestrator_url,
            "WORKER_CONTROL_PLANE_URL": self.api_url,
            "DEFAULT_ADMIN_PASSWORD": self.admin_password,
            "AUTO_SEED_CATALOG": "1",
            "MOCK_RUNTIME": "simulated",
            "LOOP_INTERVAL_S": "0.5",
            "WORKER_HEARTBEAT_INTERVAL_S": str(heartbeat_s),
            "HEARTBEAT_FLUSH_INTERVAL_S": "1",
            "LOG_LEVEL": "WARNING",
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    async def start(self) -> None:
        if self.pinned:
            # The fleet stands for workers on other machines: it keeps off the core the
            # orchestrator is measured on.
            os.sched_setaffinity(0, {1})
        # The api first: it migrates and seeds the catalog; the orchestrator then finds both.
        self._spawn("api", "inventiv_api", core=1)
        await self._wait_ready(self.api_url)
        command = None
        if profile := os.environ.get("BENCH_PROFILE"):
            # Where the orchestrator's time goes: a cProfile dump, written when it stops.
            command = ["-m", "cProfile", "-o", profile, "-m", "inventiv_orchestrator"]
        self._spawn("orchestrator", "inventiv_orchestrator", core=0, args=command)
        await self._wait_ready(self.orchestrator_url)

    def _spawn(self, name: str, module: str, *, core: int, args: list[str] | None = None) -> None:
        command = [sys.executable, *(args or ["-m", module])]
        if self.pinned:
            command = ["taskset", "-c", str(core), *command]
        with (self.home / f"{name}.log").open("wb") as log:
            self.processes[name] = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    async def _wait_ready(self, url: str) -> None:
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                try:
                    if (await client.get(f"{url}/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{url} not ready; logs in {self.home}")

    def process(self, name: str) -> psutil.Process:
        return psutil.Process(self.processes[name].pid)

    async def admin(self) -> httpx.AsyncClient:
        """A logged-in session of the platform admin, in its own workspace."""
        client = httpx.AsyncClient(
            base_url=self.api_url,
            headers={"Origin": self.api_url},
            timeout=60,
            # Idle connections are dropped before the server's keep-alive timeout (5 s):
            # a request on one the server is closing would fail without being read.
            limits=httpx.Limits(max_connections=DEPLOY_CONCURRENCY, keepalive_expiry=1.0),
        )
        response = await client.post(
            "/auth/login", json={"username": "admin", "password": self.admin_password}
        )
        response.raise_for_status()
        return client

    def stop_orchestrator(self) -> None:
        self._stop("orchestrator")

    def stop(self) -> None:
        self._stop("orchestrator")
        self._stop("api")
        shutil.rmtree(self.home, ignore_errors=True)

    def _stop(self, name: str) -> None:
        process = self.processes.get(name)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)  # a clean stop (and the profile, if asked)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Deployments:
    """What a batch of `POST /deployments` gave: the instances accepted (202), the rest."""

    accepted: list[uuid.UUID] = field(default_factory=list)
    refused: dict[int, int] = field(default_factory=dict)  # status -> how many


async def deploy(
    client: httpx.AsyncClient,
    offer: dict[str, str],
    count: int,
    on_accepted: Callable[[uuid.UUID], None] = lambda _: None,
) -> Deployments:
    """`count` deployments through the api, DEPLOY_CONCURRENCY at a time; `on_accepted`
    hears of each instance as soon as the api accepted it."""
    done = Deployments()
    gate = asyncio.Semaphore(DEPLOY_CONCURRENCY)

    async def one() -> None:
        async with gate:
            try:
                response = await client.post("/deployments", json=offer)
                status = response.status_code
            except httpx.HTTPError:
                status = 0
        if status == 202:
            done.accepted.append(uuid.UUID(response.json()["id"]))
            on_accepted(done.accepted[-1])
        else:
            done.refused[status] = done.refused.get(status, 0) + 1

    await asyncio.gather(*(one() for _ in range(count)))
    return done


async def mock_offer(client: httpx.AsyncClient, conn: asyncpg.Connection) -> dict[str, str]:
    """The mock echo model on the mock GPU type, in its zone: what an operator picks."""
    models = (await client.get("/models")).json()
    model = next(m for m in models if m["model_id"] == "inventiv/mock-echo")
    row = await conn.fetchrow(
        "SELECT t.id AS type_id, z.id AS zone_id FROM instance_types t "
        "JOIN instance_type_zones tz ON tz.instance_type_id = t.id "
        "JOIN zones z ON z.id = tz.zone_id WHERE t.code = 'MOCK-GPU-S'"
    )
    return {
        "model_id": model["id"],
        "instance_type_id": str(row["type_id"]),
        "zone_id": str(row["zone_id"]),
    }


class Fleet:
    """Simulated workers: each registers once its server exists, then heartbeats its
    phase every `heartbeat_s`, out of phase with the others, until silenced."""

    def __init__(self, orchestrator: str, database_url: str, heartbeat_s: float) -> None:
        host, port = orchestrator.removeprefix("http://").split(":")
        # Requests go through the gateway's lean keep-alive client: a general client
        # library costs more CPU per request than the orchestrator it measures. Workers
        # reach the orchestrator directly (in production the api relays them): the api's
        # relay is not what this benchmark measures.
        self.host, self.port = host, int(port)
        self.database_url = database_url
        self.heartbeat_s = heartbeat_s
        self.http = UpstreamPool()
        self.keyring = KeyRing(DEV_SECRET_FALLBACK)
        self.tokens: dict[uuid.UUID, str] = {}
        self.phase: dict[uuid.UUID, str] = {}
        self.waiting: dict[uuid.UUID, str] = {}  # deployed, not registered yet -> phase
        self.booting: dict[uuid.UUID, asyncio.Task[None]] = {}
        self.silenced: set[uuid.UUID] = set()
        self.accepted = 0
        self.errors = 0
        self.register_errors = 0
        # Wall-clock start of each heartbeat round, and the counts then.
        self.rounds: list[tuple[float, int, int]] = []
        self.new_round = asyncio.Event()
        self.asked: dict[uuid.UUID, float] = {}
        self.answered: dict[uuid.UUID, float] = {}
        self.conn: asyncpg.Connection | None = None
        self.stop = asyncio.Event()
        self.bodies = {phase: _beat(phase) for phase in ("ready", "loading_model")}

    def expect(self, instances: list[uuid.UUID], phase: str = "ready") -> None:
        """These instances' workers will come up and report `phase`."""
        self.waiting.update((instance_id, phase) for instance_id in instances)

    def expect_one(self, instance_id: uuid.UUID) -> None:
        self.waiting[instance_id] = "ready"

    async def register_new(self) -> int:
        """Start a worker for every expected instance whose server now exists. The fleet
        shares this machine with what it measures, so it stays lean: one plain query a
        poll. It reads the bootstrap secret as cloud-init would hand it to the VM."""
        if self.conn is None:
            self.conn = await asyncpg.connect(self.database_url)
        wanted = [i for i in self.waiting if i not in self.booting]
        if not wanted:
            return 0
        rows = await self.conn.fetch(
            "SELECT id, created_at, bootstrap_secret_encrypted, engine_key_encrypted, "
            "secrets_key_id FROM instances WHERE id = ANY($1::uuid[]) "
            "AND provider_instance_id IS NOT NULL "
            "AND status IN ('booting', 'installing', 'starting')",
            wanted,
        )
        for row in rows:
            self.booting[row["id"]] = asyncio.create_task(self._register(row))
        return len(rows)

    async def register_forever(self) -> None:
        """Workers boot while deployments are still being asked for, as real ones do."""
        while not self.stop.is_set():
            await self.register_new()
            await asyncio.sleep(0.02)

    async def _register(self, row: asyncpg.Record) -> None:
        instance = Instance(
            id=row["id"],
            bootstrap_secret_encrypted=row["bootstrap_secret_encrypted"],
            engine_key_encrypted=row["engine_key_encrypted"],
            secrets_key_id=row["secrets_key_id"],
        )
        secret = open_secrets(instance, self.keyring).bootstrap_secret
        # When this worker asked, from the deployment request: the part of registration
        # latency that is the fleet's, not the orchestrator's.
        created = row["created_at"].timestamp()
        self.asked[instance.id] = time.time() - created
        body = json.dumps(
            {
                "instance_id": str(instance.id),
                "agent_version": "bench",
                "agent_checksum": expected_agent_checksum(),
            }
        ).encode()
        status, answer = await self._post("/internal/worker/register", secret, body)
        if status != 200:
            self.register_errors += 1  # retried on the next poll, as an agent retries
            self.booting.pop(instance.id, None)
            return
        self.answered[instance.id] = time.time() - created
        self.tokens[instance.id] = json.loads(answer)["token"]
        self.phase[instance.id] = self.waiting.pop(instance.id)
        await self.beat(instance.id)

    async def _post(self, path: str, bearer: str, body: bytes) -> tuple[int, bytes]:
        headers = [
            (b"authorization", f"Bearer {bearer}".encode()),
            (b"content-type", b"application/json"),
        ]
        try:
            response = await self.http.send(self.host, self.port, "POST", path, headers, body)
            return response.status, await response.read()
        except UpstreamError:
            return 0, b""

    async def beat(self, instance_id: uuid.UUID) -> None:
        status, _ = await self._post(
            "/internal/worker/heartbeat",
            self.tokens[instance_id],
            self.bodies[self.phase[instance_id]],
        )
        if status == 200:
            self.accepted += 1
        else:
            self.errors += 1

    def beating(self) -> list[uuid.UUID]:
        return [i for i in self.tokens if i not in self.silenced]

    async def heartbeat_forever(self) -> None:
        while not self.stop.is_set():
            ids = self.beating()
            started = time.monotonic()
            self.rounds.append((time.time(), self.accepted, self.errors))
            self.new_round.set()
            # Spread the fleet over the interval, like real workers out of phase.
            for start in range(0, len(ids), 100):
                await asyncio.gather(*(self.beat(i) for i in ids[start : start + 100]))
                slot = self.heartbeat_s * min(1.0, (start + 100) / max(len(ids), 1))
                await asyncio.sleep(max(0.0, started + slot - time.monotonic()))
            await asyncio.sleep(max(0.0, started + self.heartbeat_s - time.monotonic()))

    async def round_started(self, index: int) -> None:
        """Return once heartbeat round `index` (from 0) has begun: all before it are over."""
        while len(self.rounds) <= index:
            self.new_round.clear()
            await self.new_round.wait()

    async def close(self) -> None:
        self.stop.set()
        for task in self.booting.values():
            task.cancel()
        await self.http.close()
        if self.conn is not None:
            await self.conn.close()


class PassRecorder:
    """The orchestrator's own health passes, as its /admin/status reports each one
    (`last_pass_ms`, `last_pass_items`), polled often enough to see nearly every pass."""

    def __init__(self, orchestrator: str) -> None:
        self.url = f"{orchestrator}/admin/status"
        self.passes: list[tuple[float, int]] = []  # (ms, instances looked at)
        self.run = 0  # passes the loop ran meanwhile, seen or not
        self.errors: list[str] = []
        self.unanswered = 0  # status polls that failed: a busy orchestrator answers late
        self.stop = asyncio.Event()

    async def record(self) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            first: int | None = None
            last: int | None = None
            while not self.stop.is_set():
                try:
                    response = await client.get(self.url)
                    health: dict[str, Any] = response.json()["loops"]["health"]
                except (httpx.HTTPError, ValueError, KeyError):
                    self.unanswered += 1
                    await asyncio.sleep(0.1)
                    continue
                if first is None:
                    first = last = health["passes"]
                elif health["passes"] != last:
                    last = health["passes"]
                    if health["last_error"]:
                        self.errors.append(health["last_error"])  # a failed pass: not timed
                    else:
                        self.passes.append((health["last_pass_ms"], health["last_pass_items"]))
                self.run = (last or 0) - (first or 0)
                await asyncio.sleep(0.1)


def postgres_process() -> psutil.Process | None:
    """The PostgreSQL server's postmaster, when it runs on this machine."""
    names = ("postgres", "postmaster")
    for process in psutil.process_iter(["name"]):
        try:
            if process.info["name"] in names and process.parent().name() not in names:
                return process
        except (psutil.Error, AttributeError):
            continue
    return None


def cpu_seconds(process: psutil.Process) -> float:
    """CPU seconds of a process, and for PostgreSQL's postmaster, of all its backends,
    living and ended (every database's: the machine is shared, so an upper bound)."""
    try:
        times = process.cpu_times()
        if process.name() in ("postgres", "postmaster") and process.pid != os.getpid():
            # Ended backends are counted in the postmaster's children times once reaped.
            living = 0.0
            for child in process.children():
                try:
                    living += sum(child.cpu_times()[:2])
                except psutil.Error:
                    continue  # ended meanwhile: counted as reaped at the next reading
            return times.user + times.system + times.children_user + times.children_system + living
        return times.user + times.system
    except psutil.Error:
        return 0.0
