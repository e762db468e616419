"""The real orchestrator as the worker agent's control plane, on a database of its own.

An agent started by a test runs for an instance recorded as the Mock provider records
its own: an instance row that names a Mock server, and the server's row naming the
agent's process and ports. The orchestrator then treats it as any instance of the
Mock cloud: it probes the agent, takes its registration and heartbeats, and walks the
instance through its states. Tests read what the orchestrator stored.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from inventiv_common.crypto import KeyRing
from inventiv_common.db.engine import make_engine, make_session_factory
from inventiv_common.db.migrate import run_migrations
from inventiv_common.db.models import Instance, MockServer
from inventiv_common.db.seed import apply_sql_file, default_catalog_seed_path
from inventiv_common.instance_secrets import ensure
from inventiv_common.net import free_port
from inventiv_common.settings import DEV_SECRET_FALLBACK
from tests.support.databases import create_database, drop_database
from tests.support.processes import ServiceProcess, clean_env
from tests.support.redis_servers import REDIS_URL
from tests.support.waiting import wait_until

T = TypeVar("T")
# Heartbeats every half second, as the agents of these tests send them; a worker is
# called silent only after 20 missed ones, so a slow machine does not look like a
# dead worker. Loops pass often, so the tests wait on events rather than intervals.
SETTINGS = {
    "INVENTIV_ENV": "test",
    "WORKER_HEARTBEAT_INTERVAL_S": "0.5",
    "WORKER_HEARTBEAT_MISSES": "20",
    "LOOP_INTERVAL_S": "0.3",
    "HEARTBEAT_FLUSH_INTERVAL_S": "0.2",
    # A handful of agents need few connections, and the shared PostgreSQL has a hundred
    # for everyone's tests.
    "DB_POOL_SIZE": "4",
}


@dataclass(frozen=True)
class AttachedInstance:
    """An instance whose Mock server is the test's agent."""

    instance_id: uuid.UUID
    server_id: str
    bootstrap_secret: str


class LiveOrchestrator:
    """An orchestrator process, and the database it owns, read and written by the test."""

    def __init__(self, home: Path) -> None:
        # A loop of its own: the tests that use it are plain functions, and pytest's
        # loop is not ours to run or to close.
        self._loop = asyncio.new_event_loop()
        self.database_url = self._run(create_database("inventiv_worker_test"))
        self.engine: AsyncEngine = make_engine(self.database_url, pool_size=2)
        self.process: ServiceProcess | None = None
        try:
            self._start(home)
        except BaseException:
            self.stop()  # nothing of a failed start is left behind
            raise

    def _start(self, home: Path) -> None:
        self._run(self._prepare())
        port = free_port()
        self.process = ServiceProcess(
            "inventiv_orchestrator",
            port,
            clean_env(
                DATABASE_URL=self.database_url,
                REDIS_URL=REDIS_URL,
                REDIS_CHANNEL_PREFIX=f"test-{uuid.uuid4().hex[:8]}:",
                INVENTIV_HOME=str(home),
                ORCHESTRATOR_PORT=str(port),
                **SETTINGS,
            ),
            home / "orchestrator.log",
        )
        self.process.wait_ready(timeout=120)

    @property
    def url(self) -> str:
        assert self.process is not None
        return self.process.base_url

    def log(self) -> str:
        return self.process.output() if self.process is not None else ""

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        self._run(self.engine.dispose())
        self._run(drop_database(self.database_url))
        self._loop.close()

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coroutine)

    async def _prepare(self) -> None:
        """Migrated and seeded before the orchestrator boots: the catalog's Mock offer and
        model are what an instance is made of."""
        await run_migrations(self.engine)
        await apply_sql_file(self.engine, default_catalog_seed_path())

    # -- reading ------------------------------------------------------------------
    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """What `sql` returns, committed (it may be a write)."""

        async def fetch() -> list[dict[str, Any]]:
            async with self.engine.begin() as conn:
                return [dict(row) for row in (await conn.execute(text(sql), params)).mappings()]

        return self._run(fetch())

    def instance(self, instance_id: uuid.UUID) -> dict[str, Any]:
        return self.rows("SELECT * FROM instances WHERE id = :id", id=instance_id)[0]

    def wait_instance(
        self,
        instance_id: uuid.UUID,
        condition: Callable[[dict[str, Any]], bool],
        what: str,
        timeout: float = 90.0,
    ) -> dict[str, Any]:
        """The instance's row once `condition` holds for it."""

        def matching() -> dict[str, Any] | None:
            row = self.instance(instance_id)
            return row if condition(row) else None

        try:
            return wait_until(matching, timeout, what)
        except AssertionError as exc:
            row = self.instance(instance_id)
            worker = {k: v for k, v in row.items() if k.startswith("worker_") or k == "status"}
            raise AssertionError(f"{exc}\ninstance: {worker}\n{self.log()[-3000:]}") from None

    def tokens(self, instance_id: uuid.UUID) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT token_prefix, created_at, revoked_at FROM worker_auth_tokens "
            "WHERE instance_id = :id "
            "ORDER BY created_at",
            id=instance_id,
        )

    def actions(self, instance_id: uuid.UUID, action_type: str) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT * FROM action_logs WHERE instance_id = :id AND action_type = :type "
            "ORDER BY created_at",
            id=instance_id,
            type=action_type,
        )

    # -- instances the test's agents run for ----------------------------------------
    def new_instance(self) -> AttachedInstance:
        """An instance booting on a Mock server whose runtime is not started yet."""
        return self._run(self._new_instance())

    async def _new_instance(self) -> AttachedInstance:
        async with make_session_factory(self.engine)() as session:
            offer = (
                await session.execute(
                    text(
                        "SELECT t.provider_id, t.id AS type_id, tz.zone_id, m.id AS model_id "
                        "FROM instance_types t JOIN instance_type_zones tz "
                        "ON tz.instance_type_id = t.id, models m "
                        "WHERE t.code = 'MOCK-GPU-S' AND m.model_id = 'inventiv/mock-echo'"
                    )
                )
            ).one()
            organization = (
                await session.execute(
                    text("INSERT INTO organizations (name, slug) VALUES ('W', :slug) RETURNING id"),
                    {"slug": f"worker-{uuid.uuid4().hex[:8]}"},
                )
            ).scalar_one()
            server_id = "mock-" + uuid.uuid4().hex[:12]
            instance = Instance(
                id=uuid.uuid4(),
                organization_id=organization,
                provider_id=offer.provider_id,
                instance_type_id=offer.type_id,
                zone_id=offer.zone_id,
                model_id=offer.model_id,
                provider_instance_id=server_id,
                status="booting",
                progress_steps=[],
            )
            secret = ensure(instance, KeyRing(DEV_SECRET_FALLBACK)).bootstrap_secret
            # One transaction: the health loop must never see the instance without its
            # server (it would close it as gone).
            session.add(
                MockServer(
                    id=server_id,
                    name=str(instance.id),
                    zone="local-1",
                    commercial_type="MOCK-GPU-S",
                    status="starting",
                    runtime="process",
                )
            )
            session.add(instance)
            await session.commit()
        return AttachedInstance(instance.id, server_id, secret)

    def server_running(
        self,
        instance: AttachedInstance,
        agent_pid: int,
        health_port: int,
        engine_port: int,
        state_dir: Path,
    ) -> None:
        """The server's runtime is the test's agent, as the Mock provider records one."""
        details = {
            "runtime": "process",
            "server_id": instance.server_id,
            "agent_pid": agent_pid,
            "health_port": health_port,
            "engine_port": engine_port,
            "state_dir": str(state_dir),
        }
        self.rows(
            "UPDATE mock_servers SET status = 'running', ip_address = '127.0.0.1', "
            "health_port = :health, engine_port = :engine, details = CAST(:details AS jsonb) "
            "WHERE id = :id RETURNING id",
            health=health_port,
            engine=engine_port,
            details=json.dumps(details),
            id=instance.server_id,
        )

    def server_forgotten(self, instance: AttachedInstance) -> None:
        """The Mock cloud forgets the server before the test stops its agent: the
        orchestrator then never stops a runtime it did not start."""
        self.rows(
            "UPDATE mock_servers SET deleted_at = now() WHERE id = :id RETURNING id",
            id=instance.server_id,
        )
