"""Whatever fails in between, deployments converge: crashes, two orchestrators, Redis
restarts, workers that stop answering."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import asyncpg
import httpx

from tests.lifecycle.conftest import Platform, runtime_processes
from tests.support.instances import mock_spec
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_until


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


def _query(database_url: str, query: str) -> list[asyncpg.Record]:
    async def fetch() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(database_url)
        try:
            return list(await conn.fetch(query))
        finally:
            await conn.close()

    return asyncio.run(fetch())


# Creates under way: the provider made the server (it is in the Mock cloud's table), the
# orchestrator has not recorded it (the instance is still `provisioning`).
CREATES_IN_FLIGHT = """
    SELECT i.id::text AS instance_id, s.id AS server_id
    FROM instances i JOIN mock_servers s ON s.name = i.id::text AND s.deleted_at IS NULL
    WHERE i.status = 'provisioning' AND i.provider_instance_id IS NULL
"""
# Writes to instance_volumes waiting for a lock: the orchestrator recording a batch of
# creates (their volumes are its last write before the commit).
VOLUME_WRITES_WAITING = """
    SELECT count(*) AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
    WHERE c.relname = 'instance_volumes' AND NOT l.granted
"""


class HeldWrites:
    """A PostgreSQL session holding a table in SHARE mode: reads go on, every write to
    it waits until `release()`, as behind a slow disk."""

    def __init__(self, database_url: str, table: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._conn = self._loop.run_until_complete(asyncpg.connect(database_url))
        self._loop.run_until_complete(self._conn.execute("BEGIN"))
        self._loop.run_until_complete(self._conn.execute(f"LOCK TABLE {table} IN SHARE MODE"))

    def release(self) -> None:
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._conn.close())  # rolls back: lock gone
            self._loop.close()


def _bus(process: ServiceProcess) -> dict[str, Any]:
    """The process's bus consumer, as its /admin/status shows it."""
    return dict(httpx.get(f"{process.base_url}/admin/status", timeout=10).json()["bus"])


def _unpublished_commands(platform: Platform, command: str) -> int:
    """Commands the api could not hand to Redis, as its log says."""
    lines = platform.api.process.output().splitlines()
    return sum(
        1
        for line in lines
        if '"event not published' in line and json.loads(line).get("event_type") == command
    )


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
    wait_until(lambda: not any(runtime_processes(i) for i in ids), 60, "every runtime process gone")
    assert asyncio.run(_servers(platform.env["DATABASE_URL"])) == []
    assert asyncio.run(_live_volumes(platform.env["DATABASE_URL"])) == 0


def test_orchestrator_killed_during_provisioning_then_restarted(platform: Platform) -> None:
    """SIGKILLed where a crash hurts most: the provider has made a server the
    orchestrator has not recorded. The next orchestrator finds that server, by the
    instance's name, and finishes the work: no server lost, none made twice."""
    database = platform.env["DATABASE_URL"]
    orchestrator = platform.orchestrators.pop()
    # Recording a batch of creates waits on instance_volumes: the batch stays in flight.
    held = HeldWrites(database, "instance_volumes")
    try:
        ids = [platform.deploy()["id"] for _ in range(5)]
        wait_until(
            lambda: (
                _query(database, VOLUME_WRITES_WAITING)[0]["n"]
                and _query(database, CREATES_IN_FLIGHT)
            ),
            60,
            "a batch of creates made at the provider, waiting to be recorded",
        )
        orchestrator.proc.send_signal(signal.SIGKILL)
        orchestrator.proc.wait(30)
        # The orchestrator is dead: this is the state it left, a create in flight.
        in_flight = {r["instance_id"]: r["server_id"] for r in _query(database, CREATES_IN_FLIGHT)}
        assert in_flight and set(in_flight) <= set(ids), in_flight
    finally:
        held.release()
    orchestrator.stop()
    platform.start_orchestrator()
    for instance_id in ids:
        platform.wait_status(instance_id, "ready", timeout=90)
    servers = asyncio.run(_servers(database))
    assert sorted(s["name"] for s in servers) == sorted(ids)  # exactly one server each
    # The servers made before the kill are the ones the instances run on.
    for instance_id, server_id in in_flight.items():
        assert platform.instance(instance_id)["provider_instance_id"] == server_id
    # The killed orchestrator's record of them was never committed; the next one's was.
    created = platform.action_logs(action_type="provider.create")
    assert sorted(e["instance_id"] for e in created) == sorted(ids)


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
    # Half the cache's 60 s lifetime: a refusal within it is the bus's doing, not expiry.
    wait_until(
        lambda: beat(other.base_url, token) == 401,
        30,
        "the other replica refusing the revoked token",
    )
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
        platform.wait_status(instance_id, "unhealthy", timeout=60)
    finally:
        agent.send_signal(signal.SIGCONT)
    platform.wait_status(instance_id, "ready", timeout=60)
    changes = platform.action_logs(instance_id=instance_id, action_type="instance.status_changed")
    moves = [(c["instance_status_before"], c["instance_status_after"]) for c in reversed(changes)]
    assert moves[-2:] == [("ready", "unhealthy"), ("unhealthy", "ready")], moves
    # Unhealthy because its heartbeats stopped (the agent answered nothing while stopped).
    assert changes[1]["details"]["reason"] == "heartbeats stopped", changes[1]


def test_redis_restarted_mid_flow_still_converges(platform_on_own_redis: Platform) -> None:
    """The api and the orchestrator share a Redis that stops mid-flow: the commands the
    api sends meanwhile are lost on the bus, and the orchestrator's sweep finds their
    work in PostgreSQL all the same; once Redis is back, commands travel again."""
    platform = platform_on_own_redis
    redis = platform.redis
    assert redis is not None
    orchestrator = platform.orchestrators[0]
    wait_until(lambda: _bus(orchestrator)["subscribed"], 60, "the orchestrator on the bus")
    ids = [platform.deploy()["id"] for _ in range(2)]
    assert _unpublished_commands(platform, "CMD:PROVISION") == 0
    redis.stop()
    lost = [platform.deploy()["id"] for _ in range(2)]
    ids += lost
    # The api could not hand these two commands to Redis: nobody will ever hear them.
    assert _unpublished_commands(platform, "CMD:PROVISION") == 2
    # With Redis still down, the sweep alone moves them on.
    wait_until(
        lambda: all(platform.instance(i)["status"] != "provisioning" for i in lost),
        60,
        "the sweep creating the servers of the commands lost",
    )
    wait_until(lambda: not _bus(orchestrator)["subscribed"], 60, "the orchestrator off the bus")
    redis.start()
    wait_until(lambda: _bus(orchestrator)["subscribed"], 60, "the orchestrator back on the bus")
    for instance_id in ids:
        platform.wait_status(instance_id, "ready", timeout=90)
    assert platform.admin.delete(f"/instances/{ids[0]}").status_code == 202
    platform.wait_status(ids[0], "terminated", timeout=60)
    # The api's termination command went out: Redis took it.
    assert _unpublished_commands(platform, "CMD:TERMINATE") == 0


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
    wait_until(
        lambda: all(
            s["id"] != server_id for s in asyncio.run(_servers(platform.env["DATABASE_URL"]))
        ),
        60,
        "the orphan server terminated",
    )
    wait_until(lambda: runtime_processes(orphan_name) == [], 60, "the orphan's processes gone")
    # Its volume, detached by the termination, is the storage loop's (woken by it).
    wait_until(
        lambda: asyncio.run(_live_volumes(platform.env["DATABASE_URL"])) == 0,
        60,
        "the orphan's volume deleted",
    )


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
    platform.wait_status(instance_id, "unhealthy", timeout=60)
    assert runtime_processes(instance_id) == []
    assert "attached" in inventiv("worker-attach", instance_id)
    platform.wait_status(instance_id, "ready", timeout=60)
    assert "in sync: 1 server(s) checked" in inventiv("mock-runtime-sync")
