"""Whatever fails in between, deployments converge: crashes, two orchestrators, Redis
restarts, workers that stop answering."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import asyncpg
import httpx

from tests.lifecycle.conftest import HEARTBEAT_S, Platform, runtime_processes
from tests.support.instances import mock_spec
from tests.support.redis_servers import ThrowawayRedis


async def _servers(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch("SELECT id, name FROM mock_servers WHERE deleted_at IS NULL")
    finally:
        await conn.close()


async def _live_volumes(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM mock_volumes WHERE deleted_at IS NULL")
        )
    finally:
        await conn.close()


def test_five_deployments_ready_then_gone_without_leftovers(platform: Platform) -> None:
    ids = [platform.deploy()["id"] for _ in range(5)]
    for instance_id in ids:
        platform.wait_status(instance_id, "ready", timeout=90)
    assert sorted(s["name"] for s in asyncio.run(_servers(platform.env["DATABASE_URL"]))) == sorted(
        ids
    )
    for instance_id in ids:
        assert platform.admin.delete(f"/instances/{instance_id}").status_code == 202
    for instance_id in ids:
        platform.wait_status(instance_id, "terminated", timeout=90)
    deadline = time.monotonic() + 15
    while any(runtime_processes(i) for i in ids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [i for i in ids if runtime_processes(i)] == []
    assert asyncio.run(_servers(platform.env["DATABASE_URL"])) == []
    assert asyncio.run(_live_volumes(platform.env["DATABASE_URL"])) == 0


def test_orchestrator_killed_during_provisioning_then_restarted(platform: Platform) -> None:
    orchestrator = platform.orchestrators.pop()
    ids = [platform.deploy()["id"] for _ in range(5)]
    time.sleep(0.5)  # some creates under way
    orchestrator.proc.send_signal(signal.SIGKILL)
    orchestrator.stop()
    platform.start_orchestrator()
    for instance_id in ids:
        platform.wait_status(instance_id, "ready", timeout=90)
    servers = asyncio.run(_servers(platform.env["DATABASE_URL"]))
    assert sorted(s["name"] for s in servers) == sorted(ids)  # exactly one server each


def test_two_orchestrators_create_each_server_once(platform: Platform) -> None:
    platform.start_orchestrator(primary=False)
    ids = [platform.deploy()["id"] for _ in range(5)]
    for instance_id in ids:
        platform.wait_status(instance_id, "ready", timeout=90)

    async def created_counts() -> list[int]:
        conn = await asyncpg.connect(platform.env["DATABASE_URL"])
        try:
            rows = await conn.fetch("SELECT name, count(*) AS n FROM mock_servers GROUP BY name")
            return [r["n"] for r in rows]
        finally:
            await conn.close()

    assert asyncio.run(created_counts()) == [1] * 5
    logs = platform.admin.get(
        "/action_logs", params={"action_type": "provider.create", "limit": 100}
    ).json()
    assert len(logs) == 5


def test_a_token_revoked_on_one_orchestrator_is_refused_at_once_by_another(
    platform: Platform,
) -> None:
    """Each replica caches the worker tokens it has seen; a revocation on one (here a new
    registration) reaches the others over the bus, well within their cache's TTL."""
    other = platform.start_orchestrator(primary=False)
    instance_id = platform.deploy()["id"]
    platform.wait_status(instance_id, "ready")
    server_id = platform.instance(instance_id)["provider_instance_id"]
    token = (platform.home / "runtimes" / server_id / "worker_token").read_text().strip()
    agent = next(
        p
        for p in runtime_processes(instance_id)
        if "inventiv_worker.agent" in " ".join(p.cmdline())
    )
    bootstrap = agent.environ()["WORKER_BOOTSTRAP_SECRET"]

    def beat(base_url: str, secret: str) -> int:
        return httpx.post(
            f"{base_url}/internal/worker/heartbeat",
            json={"phase": "ready"},
            headers={"Authorization": f"Bearer {secret}"},
            timeout=5,
        ).status_code

    assert beat(other.base_url, token) == 200  # now cached by the other replica
    primary = platform.orchestrators[0]
    registered = httpx.post(
        f"{primary.base_url}/internal/worker/register",
        json={"instance_id": instance_id},
        headers={"Authorization": f"Bearer {bootstrap}"},
        timeout=5,
    )
    assert registered.status_code == 200, registered.text
    deadline = time.monotonic() + 5
    while beat(other.base_url, token) == 200:
        assert time.monotonic() < deadline, "the other replica still trusts a revoked token"
        time.sleep(0.1)
    assert beat(other.base_url, token) == 401
    assert beat(other.base_url, registered.json()["token"]) == 200


def test_worker_stopped_goes_unhealthy_then_recovers(platform: Platform) -> None:
    instance_id = platform.deploy()["id"]
    platform.wait_status(instance_id, "ready")
    agent = next(
        p
        for p in runtime_processes(instance_id)
        if "inventiv_worker.agent" in " ".join(p.cmdline())
    )
    agent.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        platform.wait_status(instance_id, "unhealthy", timeout=30)
        # Three missed heartbeats, plus one loop interval and one write flush of slack.
        assert time.monotonic() - started <= 3 * HEARTBEAT_S + 3.0
    finally:
        agent.send_signal(signal.SIGCONT)
    platform.wait_status(instance_id, "ready", timeout=30)
    changes = platform.admin.get(
        "/action_logs",
        params={"instance_id": instance_id, "action_type": "instance.status_changed"},
    ).json()
    assert ("ready", "unhealthy") in [
        (c["instance_status_before"], c["instance_status_after"]) for c in changes
    ]


def test_redis_restarted_mid_flow_still_converges(platform: Platform, tmp_path: Path) -> None:
    redis = ThrowawayRedis(tmp_path)
    redis.start()
    try:
        # Move the platform onto a Redis we can stop.
        platform.orchestrators.pop().stop()
        platform.env["REDIS_URL"] = redis.url
        platform.start_orchestrator()
        ids = [platform.deploy()["id"] for _ in range(2)]
        redis.stop()
        ids += [platform.deploy()["id"] for _ in range(2)]  # commands lost: no Redis
        time.sleep(1.0)
        redis.start()
        for instance_id in ids:
            platform.wait_status(instance_id, "ready", timeout=90)
        platform.admin.delete(f"/instances/{ids[0]}")
        platform.wait_status(ids[0], "terminated", timeout=60)
    finally:
        redis.stop()


def test_watchdog_terminates_orphan_servers(platform: Platform) -> None:
    import uuid

    from inventiv_common.db.engine import make_engine, make_session_factory
    from inventiv_common.providers.mock import MockProvider
    from inventiv_common.providers.mock_runtime import ProcessRuntime

    orphan_name = str(uuid.uuid4())  # tagged like ours, but no instance has this id

    async def make_orphan() -> str:
        engine = make_engine(platform.env["DATABASE_URL"], pool_size=1)
        try:
            provider = MockProvider(make_session_factory(engine), ProcessRuntime(platform.home))
            server = await provider.create(mock_spec(orphan_name))
            return server.provider_id
        finally:
            await engine.dispose()

    server_id = asyncio.run(make_orphan())
    assert runtime_processes(orphan_name)
    reconcile = platform.admin.post("/reconcile")
    assert reconcile.status_code == 202
    [logged] = platform.admin.get("/action_logs", params={"action_type": "reconcile"}).json()
    assert logged["details"]["id"] == reconcile.json()["id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(
        s["id"] == server_id for s in asyncio.run(_servers(platform.env["DATABASE_URL"]))
    ):
        time.sleep(0.2)
    assert all(s["id"] != server_id for s in asyncio.run(_servers(platform.env["DATABASE_URL"])))
    deadline = time.monotonic() + 10
    while runtime_processes(orphan_name) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert runtime_processes(orphan_name) == []
    # Its volume, detached by the termination, is the storage loop's (woken by it).
    deadline = time.monotonic() + 10
    while asyncio.run(_live_volumes(platform.env["DATABASE_URL"])) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert asyncio.run(_live_volumes(platform.env["DATABASE_URL"])) == 0


def test_operator_commands_detach_and_attach_a_runtime(platform: Platform) -> None:
    import subprocess
    import sys

    def inventiv(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "inventiv_common.cli", *args],
            env=platform.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    instance_id = platform.deploy()["id"]
    platform.wait_status(instance_id, "ready")
    assert instance_id in inventiv("mock-runtimes")
    assert "detached" in inventiv("worker-detach", instance_id)
    platform.wait_status(instance_id, "unhealthy", timeout=30)
    assert runtime_processes(instance_id) == []
    assert "attached" in inventiv("worker-attach", instance_id)
    platform.wait_status(instance_id, "ready", timeout=30)
    assert "in sync: 1 server(s) checked" in inventiv("mock-runtime-sync")
