"""The Mock provider: a cloud whose inventory is a PostgreSQL table and whose servers
are local runtimes (see mock_runtime)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
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

    def _server(self, row: MockServer) -> ProviderServer:
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
        async with self.session_factory() as session:
            row = await session.scalar(
                select(MockServer).where(MockServer.name == name, MockServer.deleted_at.is_(None))
            )
            return self._server(row) if row else None

    async def create(self, spec: ServerSpec) -> ProviderServer:
        existing = await self.find_by_name(spec.name)
        if existing is not None and existing.status == "starting":
            # A create interrupted between starting the runtime and recording it: its
            # processes (if any) are unknown, so they are replaced by a recorded start.
            await asyncio.to_thread(self.runtime.stop_strays, existing.provider_id)
            return await self._start_runtime(existing.provider_id, spec)
        if existing is not None:
            return existing  # a retried create finds the server it already made
        if self.fail_creates > 0:
            self.fail_creates -= 1
            raise ProviderError(
                "mock provider: capacity temporarily unavailable in zone " + spec.zone
            )
        server_id = "mock-" + uuid.uuid4().hex[:12]
        async with self.session_factory() as session:
            session.add(
                MockServer(
                    id=server_id,
                    name=spec.name,
                    zone=spec.zone,
                    commercial_type=spec.instance_type,
                    status="starting",
                    runtime=self.runtime.name,
                )
            )
            session.add(
                MockVolume(
                    id="vol-" + uuid.uuid4().hex[:12],
                    server_id=server_id,
                    name=f"{spec.name}-boot",
                    zone=spec.zone,
                    size_gb=BOOT_VOLUME_GB,
                )
            )
            await session.commit()
        return await self._start_runtime(server_id, spec)

    async def _start_runtime(self, server_id: str, spec: ServerSpec) -> ProviderServer:
        details = await asyncio.to_thread(self.runtime.start, server_id, spec)
        async with self.session_factory() as session:
            await session.execute(
                update(MockServer)
                .where(MockServer.id == server_id)
                .values(
                    status="running",
                    ip_address="127.0.0.1",
                    health_port=details.get("health_port"),
                    engine_port=details.get("engine_port"),
                    details=details,
                )
            )
            await session.commit()
        server = await self.get(server_id)
        assert server is not None
        return server

    async def get(self, provider_id: str) -> ProviderServer | None:
        async with self.session_factory() as session:
            row = await session.get(MockServer, provider_id)
            return self._server(row) if row else None

    async def terminate(self, provider_id: str) -> None:
        async with self.session_factory() as session:
            row = await session.get(MockServer, provider_id)
            if row is None or row.deleted_at is not None:
                return  # already gone: success
            details: dict[str, Any] = dict(row.details)
        await asyncio.to_thread(self.runtime.stop, details)
        async with self.session_factory() as session:
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
        async with self.session_factory() as session:
            row = await session.get(MockServer, provider_id)
            if row is None or row.deleted_at is not None:
                raise ProviderError(f"no live mock server {provider_id}", retryable=False)
            details = dict(row.details)
        await asyncio.to_thread(self.runtime.stop, details)
        details = await asyncio.to_thread(self.runtime.start, provider_id, spec)
        async with self.session_factory() as session:
            await session.execute(
                update(MockServer)
                .where(MockServer.id == provider_id)
                .values(
                    status="running",
                    health_port=details.get("health_port"),
                    engine_port=details.get("engine_port"),
                    details=details,
                )
            )
            await session.commit()
        server = await self.get(provider_id)
        assert server is not None
        return server

    async def stop_runtime(self, provider_id: str) -> None:
        """Stop the runtime but keep the server (operators' `worker-detach`)."""
        async with self.session_factory() as session:
            row = await session.get(MockServer, provider_id)
            if row is None:
                return
            details = dict(row.details)
        await asyncio.to_thread(self.runtime.stop, details)

    async def list_servers(self) -> list[ProviderServer]:
        async with self.session_factory() as session:
            rows = await session.scalars(select(MockServer).where(MockServer.deleted_at.is_(None)))
            return [self._server(row) for row in rows]

    async def list_volumes(self) -> list[ProviderVolume]:
        async with self.session_factory() as session:
            rows = await session.scalars(select(MockVolume).where(MockVolume.deleted_at.is_(None)))
            return [
                ProviderVolume(r.id, r.name, r.zone, r.size_gb, r.server_id, r.volume_type)
                for r in rows
            ]

    async def delete_volume(self, provider_id: str) -> None:
        async with self.session_factory() as session:
            await session.execute(
                update(MockVolume)
                .where(MockVolume.id == provider_id, MockVolume.deleted_at.is_(None))
                .values(deleted_at=datetime.now(UTC))
            )
            await session.commit()

    async def sync_catalog(self) -> list[CatalogType]:
        # The mock's catalog is what the seed put in the database.
        async with self.session_factory() as session:
            rows = await session.scalars(
                select(InstanceType)
                .join(Provider, Provider.id == InstanceType.provider_id)
                .where(Provider.code == self.code)
            )
            return [CatalogType(t.code, Decimal(t.cost_per_hour_eur), ("local-1",)) for t in rows]

    async def check_credentials(self) -> bool:
        return True
