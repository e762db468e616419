"""The Mock provider: a cloud whose inventory is a PostgreSQL table and whose servers
are local runtimes (see mock_runtime)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Row, Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventiv_common.db.models import InstanceType, MockServer, MockVolume, Provider
from inventiv_common.providers.base import (
    CatalogType,
    ProviderError,
    ProviderServer,
    ProviderVolume,
    ServerSpec,
)
from inventiv_common.providers.mock_runtime import Runtime

BOOT_VOLUME_GB = 20
# Database sessions the Mock provider may hold at once (the pool has DB_POOL_SIZE).
DB_SLOTS = 4
MOCK_SERVERS = cast(Table, MockServer.__table__)


class MockProvider:
    code = "mock"

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        runtime: Runtime,
        *,
        fail_creates: int = 0,
    ) -> None:
        self.session_factory = session_factory
        self.runtime = runtime
        # Test hook: the next N creates fail as a cloud API outage would.
        self.fail_creates = fail_creates
        # A cloud API answers without touching our database; this stand-in keeps its
        # servers there, so a burst of creates must not take every pooled connection
        # (workers registering and heartbeating need theirs meanwhile).
        self._db_slots = asyncio.Semaphore(DB_SLOTS)

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        async with self._db_slots, self.session_factory() as session:
            yield session

    def _server(self, row: MockServer | Row[Any]) -> ProviderServer:
        status = row.status
        if status == "running" and not self.runtime.alive(row.details):
            status = "stopped"  # the runtime died under us, as a crashed VM would
        return ProviderServer(
            provider_id=row.id,
            name=row.name,
            status="deleted" if row.deleted_at else status,
            zone=row.zone,
            ip_address=row.ip_address,
            health_port=row.health_port,
            engine_port=row.engine_port,
            details=dict(row.details),
        )

    async def find_by_name(self, name: str) -> ProviderServer | None:
        async with self._session() as session:
            row = await session.scalar(
                select(MockServer).where(MockServer.name == name, MockServer.deleted_at.is_(None))
            )
            return self._server(row) if row else None

    async def create(self, spec: ServerSpec) -> ProviderServer:
        async with self._session() as session:
            existing = await session.scalar(
                select(MockServer).where(
                    MockServer.name == spec.name, MockServer.deleted_at.is_(None)
                )
            )
            if existing is not None and existing.status != "starting":
                return self._server(existing)  # a retried create finds what it made
            if existing is None:
                server, volume = await self._insert_server(session, spec)
        if existing is not None:
            # A create interrupted between starting the runtime and recording it: its
            # processes (if any) are unknown, so they are replaced by a recorded start.
            await asyncio.to_thread(self.runtime.stop_strays, existing.id)
            return await self._start_runtime(existing.id, spec)
        made = (
            self._server(server)
            if server.status == "running"
            else await self._start_runtime(server.id, spec)
        )
        return replace(made, volumes=(_volume(volume),))

    async def _insert_server(
        self, session: AsyncSession, spec: ServerSpec
    ) -> tuple[MockServer, MockVolume]:
        if self.fail_creates > 0:
            self.fail_creates -= 1
            raise ProviderError(
                "mock provider: capacity temporarily unavailable in zone " + spec.zone
            )
        server = MockServer(
            id="mock-" + uuid.uuid4().hex[:12],
            name=spec.name,
            zone=spec.zone,
            commercial_type=spec.instance_type,
            status="starting",
            runtime=self.runtime.name,
            details={},
        )
        volume = MockVolume(
            id="vol-" + uuid.uuid4().hex[:12],
            server_id=server.id,
            name=f"{spec.name}-boot",
            zone=spec.zone,
            size_gb=BOOT_VOLUME_GB,
            volume_type="b_ssd",
        )
        if not self.runtime.leaves_processes:
            # Nothing to lose if this transaction dies: record it running in one go.
            for name, value in _running(self.runtime.start(server.id, spec)).items():
                setattr(server, name, value)
        session.add_all([server, volume])
        await session.commit()
        return server, volume

    async def _start_runtime(self, server_id: str, spec: ServerSpec) -> ProviderServer:
        details = await asyncio.to_thread(self.runtime.start, server_id, spec)
        async with self._session() as session:
            row = (
                await session.execute(
                    update(MOCK_SERVERS)
                    .where(MOCK_SERVERS.c.id == server_id)
                    .values(**_running(details))
                    .returning(*MOCK_SERVERS.c)
                )
            ).one()
            await session.commit()
        return self._server(row)

    async def get(self, provider_id: str) -> ProviderServer | None:
        async with self._session() as session:
            row = await session.get(MockServer, provider_id)
            return self._server(row) if row else None

    async def terminate(self, provider_id: str) -> None:
        async with self._session() as session:
            row = await session.get(MockServer, provider_id)
            if row is None or row.deleted_at is not None:
                return  # already gone: success
            details: dict[str, Any] = dict(row.details)
        await asyncio.to_thread(self.runtime.stop, details)
        async with self._session() as session:
            await session.execute(
                update(MockServer)
                .where(MockServer.id == provider_id)
                .values(status="deleted", deleted_at=datetime.now(UTC))
            )
            # Like a cloud, volumes outlive their server until deleted.
            await session.execute(
                update(MockVolume).where(MockVolume.server_id == provider_id).values(server_id=None)
            )
            await session.commit()

    async def restart_runtime(self, provider_id: str, spec: ServerSpec) -> ProviderServer:
        """Start the runtime of an existing server again (operators' `worker-attach`)."""
        async with self._session() as session:
            row = await session.get(MockServer, provider_id)
            if row is None or row.deleted_at is not None:
                raise ProviderError(f"no live mock server {provider_id}", retryable=False)
            details = dict(row.details)
        await asyncio.to_thread(self.runtime.stop, details)
        return await self._start_runtime(provider_id, spec)

    async def stop_runtime(self, provider_id: str) -> None:
        """Stop the runtime but keep the server (operators' `worker-detach`)."""
        async with self._session() as session:
            row = await session.get(MockServer, provider_id)
            if row is None:
                return
            details = dict(row.details)
        await asyncio.to_thread(self.runtime.stop, details)

    async def list_servers(self) -> list[ProviderServer]:
        # Plain rows, not ORM objects: the health loop lists thousands of servers a pass.
        async with self._session() as session:
            rows = await session.execute(
                select(*MOCK_SERVERS.c).where(MOCK_SERVERS.c.deleted_at.is_(None))
            )
            return [self._server(row) for row in rows]

    async def list_volumes(self, server_id: str | None = None) -> list[ProviderVolume]:
        query = select(MockVolume).where(MockVolume.deleted_at.is_(None))
        if server_id is not None:
            query = query.where(MockVolume.server_id == server_id)
        async with self._session() as session:
            return [_volume(row) for row in await session.scalars(query)]

    async def delete_volume(self, provider_id: str) -> None:
        async with self._session() as session:
            await session.execute(
                update(MockVolume)
                .where(MockVolume.id == provider_id, MockVolume.deleted_at.is_(None))
                .values(deleted_at=datetime.now(UTC))
            )
            await session.commit()

    async def sync_catalog(self) -> list[CatalogType]:
        # The mock's catalog is what the seed put in the database.
        async with self._session() as session:
            rows = await session.scalars(
                select(InstanceType)
                .join(Provider, Provider.id == InstanceType.provider_id)
                .where(Provider.code == self.code)
            )
            return [CatalogType(t.code, Decimal(t.cost_per_hour_eur), ("local-1",)) for t in rows]

    async def check_credentials(self) -> bool:
        return True


def _running(details: dict[str, Any]) -> dict[str, Any]:
    """The columns of a server whose runtime started with these details."""
    return {
        "status": "running",
        "ip_address": "127.0.0.1",
        "health_port": details.get("health_port"),
        "engine_port": details.get("engine_port"),
        "details": details,
    }


def _volume(row: MockVolume) -> ProviderVolume:
    return ProviderVolume(row.id, row.name, row.zone, row.size_gb, row.server_id, row.volume_type)
