"""A real platform for lifecycle tests: api and orchestrator processes on one fresh
database and the shared Redis (or a Redis of the test's own, which it may stop), with
mock instances running as real local processes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from inventiv_common.net import free_port
from tests.api.conftest import ADMIN_PASSWORD, LiveApi
from tests.support.processes import ServiceProcess, clean_env
from tests.support.redis_servers import REDIS_URL, ThrowawayRedis
from tests.support.waiting import wait_until

HEARTBEAT_S = 0.5


@dataclass
class Platform:
    api: LiveApi
    orchestrators: list[ServiceProcess]
    admin: httpx.Client
    env: dict[str, str]
    home: Path
    tmp: Path
    # The Redis every process of this platform uses, when it is the test's own.
    redis: ThrowawayRedis | None = None

    def catalog(self) -> dict[str, str]:
        """Ids of the mock type, zone and model to deploy."""
        models = self.admin.get("/models").json()
        model = next(m for m in models if m["model_id"] == "inventiv/mock-echo")
        return {"model_id": model["id"], **self.mock_offer()}

    def mock_offer(self) -> dict[str, str]:
        import asyncio

        import asyncpg

        async def query() -> dict[str, str]:
            conn = await asyncpg.connect(self.env["DATABASE_URL"])
            row = await conn.fetchrow(
                "SELECT t.id AS type_id, z.id AS zone_id FROM instance_types t "
                "JOIN instance_type_zones tz ON tz.instance_type_id = t.id "
                "JOIN zones z ON z.id = tz.zone_id WHERE t.code = 'MOCK-GPU-S'"
            )
            await conn.close()
            return {"instance_type_id": str(row["type_id"]), "zone_id": str(row["zone_id"])}

        return asyncio.run(query())

    def outsider(self, username: str) -> httpx.Client:
        """A new user, logged in, working in a new organization of their own."""
        password = "another-long-password"
        created = self.admin.post(
            "/users",
            json={
                "username": username,
                "email": f"{username}@example.test",
                "password": password,
                "role": "user",
            },
        )
        assert created.status_code == 201, created.text
        client = self.api.login(username, password)
        org = client.post("/organizations", json={"name": f"{username} org"})
        assert org.status_code == 201, org.text
        switched = client.put("/organizations/current", json={"organization_id": org.json()["id"]})
        assert switched.status_code == 204
        return client

    def deploy(self) -> dict[str, Any]:
        response = self.admin.post("/deployments", json=self.catalog())
        assert response.status_code == 202, response.text
        return response.json()

    def instance(self, instance_id: str) -> dict[str, Any]:
        return self.admin.get(f"/instances/{instance_id}").json()

    def wait_status(self, instance_id: str, status: str, timeout: float = 90.0) -> list[str]:
        """Poll until the instance reaches `status`; returns the statuses seen."""
        seen: list[str] = []

        def reached() -> bool:
            current = self.instance(instance_id)["status"]
            if not seen or seen[-1] != current:
                seen.append(current)
            return current == status

        try:
            wait_until(reached, timeout, f"{instance_id} {status}", interval=0.1)
        except AssertionError:
            last = self.instance(instance_id)
            worker = {
                k: v for k, v in last.items() if k.startswith("worker_") or k == "progress_steps"
            }
            raise AssertionError(
                f"{instance_id} never reached {status}; saw {seen}\nworker: {worker}\n"
                + "\n".join(o.output()[-3000:] for o in self.orchestrators)
            ) from None
        return seen

    def action_logs(self, **params: str) -> list[dict[str, Any]]:
        """Action log entries (newest first) matching the api's filters."""
        response = self.admin.get("/action_logs", params={"limit": "100", **params})
        assert response.status_code == 200, response.text
        entries: list[dict[str, Any]] = response.json()
        return entries

    def start_orchestrator(self, *, primary: bool = True, **extra: str) -> ServiceProcess:
        """Start an orchestrator; the primary one listens where the api forwards the
        workers' calls (a replacement takes over that port)."""
        port = int(self.env["ORCHESTRATOR_URL"].rsplit(":", 1)[1]) if primary else free_port()
        env = {**self.env, "ORCHESTRATOR_PORT": str(port), **extra}
        process = ServiceProcess("inventiv_orchestrator", port, env, self.tmp / f"orch-{port}.log")
        process.wait_ready()
        self.orchestrators.append(process)
        return process


def runtime_processes(instance_id: str) -> list[psutil.Process]:
    """Every local process of a mock instance's runtime (agent and engine)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("INSTANCE_ID") == instance_id:
                found.append(process)
                found.extend(process.children(recursive=True))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    unique = {p.pid: p for p in found}.values()
    return [p for p in unique if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@contextmanager
def running_platform(
    database_url: str, tmp_path: Path, redis: ThrowawayRedis | None, overrides: dict[str, str]
) -> Iterator[Platform]:
    api_port, orch_port = free_port(), free_port()
    home = tmp_path / "home"
    settings = dict(
        DATABASE_URL=database_url,
        REDIS_URL=redis.url if redis else REDIS_URL,
        REDIS_CHANNEL_PREFIX=f"test-{uuid.uuid4().hex[:8]}:",
        INVENTIV_ENV="test",
        INVENTIV_HOME=str(home),
        DEFAULT_ADMIN_PASSWORD=ADMIN_PASSWORD,
        AUTO_SEED_CATALOG="1",
        ORCHESTRATOR_URL=f"http://127.0.0.1:{orch_port}",
        WORKER_CONTROL_PLANE_URL=f"http://127.0.0.1:{api_port}",
        WORKER_HEARTBEAT_INTERVAL_S=str(HEARTBEAT_S),
        LOOP_INTERVAL_S="0.3",
        MOCK_ENGINE_STARTUP_DELAY_S="1",
        PROVISION_RETRY_BASE_S="0.2",
        HEARTBEAT_FLUSH_INTERVAL_S="0.2",
        LOGIN_RATE_LIMIT_PER_IP="100000",
    )
    env = clean_env(**{**settings, **overrides})  # the test's settings win
    api_process = ServiceProcess(
        "inventiv_api", api_port, {**env, "API_PORT": str(api_port)}, tmp_path / "api.log"
    )
    api_process.wait_ready()
    api = LiveApi(api_process.base_url, api_process)
    orchestrator = ServiceProcess(
        "inventiv_orchestrator",
        orch_port,
        {**env, "ORCHESTRATOR_PORT": str(orch_port)},
        tmp_path / "orch.log",
    )
    orchestrator.wait_ready()
    platform = Platform(
        api, [orchestrator], api.login("admin", ADMIN_PASSWORD), env, home, tmp_path, redis
    )
    yield platform
    # Leave nothing running: terminate every mock runtime this test started.
    for process in psutil.process_iter():
        try:
            if str(home) in process.environ().get("WORKER_STATE_DIR", ""):
                process.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    for process in platform.orchestrators:
        process.stop()
    api_process.stop()


@pytest.fixture
def platform(
    empty_database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Platform]:
    """The platform; a test marked `platform_env(NAME="value", ...)` gets those
    settings in every process."""
    marker = request.node.get_closest_marker("platform_env")
    with running_platform(
        empty_database_url, tmp_path, None, dict(marker.kwargs) if marker else {}
    ) as platform:
        yield platform


@pytest.fixture
def platform_on_own_redis(empty_database_url: str, tmp_path: Path) -> Iterator[Platform]:
    """The platform with every process (api and orchestrator) on a Redis of the test's
    own, `platform.redis`, which the test may stop and start again."""
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    redis = ThrowawayRedis(redis_dir)
    redis.start()
    try:
        with running_platform(empty_database_url, tmp_path, redis, {}) as platform:
            yield platform
    finally:
        redis.stop()
