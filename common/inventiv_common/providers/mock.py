"""The Mock provider: a cloud whose inventory is a PostgreSQL table and whose servers
are local runtimes (see mock_runtime)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Row, Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventiv_common.db.models import MockServer, MockVolume
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
# What the Mock "cloud" sells, as a provider's catalog API would answer (the seed
# starts the database with the same offers).
MOCK_CATALOG = (
    CatalogType("MOCK-GPU-S", Decimal("0.100000"), ("local-1",)),
    CatalogType("MOCK-GPU-L", Decimal("0.500000"), ("local-1",)),
)
MOCK_SERVERS = cast(Table, MockServer.__table__)
MOCK_VOLUMES = cast(Table, MockVolume.__table__)


class MockProvider:
    code = "mock"

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        runtime: Runtime,
        *,
        fail_creates: int = 0,
        catalog: Sequence[CatalogType] = MOCK_CATALOG,
    ) -> None:
        self.session_factory = session_factory
        self.runtime = runtime
        self.catalog = tuple(catalog)
        # Test hook: the next N creates fail as a cloud API outage would.
        self.fail_creates = fail_creates
        # A cloud API answers without touching our database; this stand-in keeps its
        # servers there, so a burst of creates must not take every pooled connection
        # (workers registering and heartbeating need theirs meanwhile).
        self._db_slots = asyncio.Semaphore(DB_SLOTS)
        # Creates waiting to be recorded together (see `_recorded`).
        self._pending: list[
            tuple[ServerSpec, asyncio.Future[tuple[Row[Any], Row[Any] | None]]]
        ] = []
        self._recorder: asyncio.Task[None] | None = None

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
        if self.fail_creates > 0:
            self.fail_creates -= 1
            raise ProviderError(
                "mock provider: capacity temporarily unavailable in zone " + spec.zone
            )
        server, volume = await self._recorded(spec)
        if volume is None:  # the server existed already
            if server.status != "starting":
                return self._server(server)  # a retried create finds what it made
            # A create interrupted between starting the runtime and recording it: its
            # processes (if any) are unknown, so they are replaced by a recorded start.
            await asyncio.to_thread(self.runtime.stop_strays, server.id)
            return await self._start_runtime(server.id, spec)
        made = (
            self._server(server)
            if server.status == "running"
            else await self._start_runtime(server.id, spec)
        )
        return replace(made, volumes=(_volume(volume),))

    async def _recorded(self, spec: ServerSpec) -> tuple[Row[Any], Row[Any] | None]:
        """The server of this spec, as found or as just recorded with its volume.

        Creates made together (a provisioning batch gathers dozens) are recorded
        together: one transaction for all of them, not one each. A cloud API answers
        without touching our database; this stand-in must not make a burst of creates
        cost hundreds of transactions."""
        done: asyncio.Future[tuple[Row[Any], Row[Any] | None]] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending.append((spec, done))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record_pending())
        return await done

    async def _record_pending(self) -> None:
        await asyncio.sleep(0)  # the creates started with this one join its batch
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                recorded = await self._record_batch([spec for spec, _ in batch])
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for spec, done in batch:
                if not done.done():
                    done.set_result(recorded[spec.name])

    async def _record_batch(
        self, specs: list[ServerSpec]
    ) -> dict[str, tuple[Row[Any], Row[Any] | None]]:
        """name -> (server, its new boot volume), or (server found, None)."""
        servers, volumes = MOCK_SERVERS.c, MOCK_VOLUMES.c
        async with self._session() as session:
            found: dict[str, tuple[Row[Any], Row[Any] | None]] = {
                row.name: (row, None)
                for row in await session.execute(
                    select(*servers).where(
                        servers.name.in_([spec.name for spec in specs]),
                        servers.deleted_at.is_(None),
                    )
                )
            }
            new = {spec.name: spec for spec in specs if spec.name not in found}
            if not new:
                return found
            server_rows = [self._new_server(spec) for spec in new.values()]
            # Parameters as a list (an executemany): the statement is compiled once and
            # cached, where a many-row VALUES clause would be compiled on every batch.
            made = {
                row.name: row
                for row in await session.execute(
                    insert(MOCK_SERVERS).returning(*servers), server_rows
                )
            }
            volume_rows = [
                {
                    "id": "vol-" + uuid.uuid4().hex[:12],
                    "server_id": made[spec.name].id,
                    "name": f"{spec.name}-boot",
                    "zone": spec.zone,
                    "size_gb": BOOT_VOLUME_GB,
                    "volume_type": "b_ssd",
                }
                for spec in new.values()
            ]
            boot_volumes = {
                row.server_id: row
                for row in await session.execute(
                    insert(MOCK_VOLUMES).returning(*volumes), volume_rows
                )
            }
            await session.commit()
        for name, server in made.items():
            found[name] = (server, boot_volumes[server.id])
        return found

    def _new_server(self, spec: ServerSpec) -> dict[str, Any]:
        server_id = "mock-" + uuid.uuid4().hex[:12]
        values: dict[str, Any] = {
            "id": server_id,
            "name": spec.name,
            "zone": spec.zone,
            "commercial_type": spec.instance_type,
            "status": "starting",
            "runtime": self.runtime.name,
            "details": {},
        }
        if not self.runtime.leaves_processes:
            # Nothing to lose if this transaction dies: record it running in one go.
            values.update(_running(self.runtime.start(server_id, spec)))
        return values

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
        found = await self.get_many([provider_id])
        return found[0] if found else None

    async def terminate(self, provider_id: str) -> None:
        async with self._session() as session:
            row = await session.get(MockServer, provider_id)
            if row is None or row.deleted_at is not None:
                return  # already gone: success
            details: dict[str, Any] = dict(row.details)
        await asyncio.to_thread(self.runtime.stop, details)
        await asyncio.to_thread(self.runtime.discard, details)
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

    async def get_many(self, provider_ids: Sequence[str]) -> list[ProviderServer]:
        async with self._session() as session:
            rows = await session.execute(
                select(*MOCK_SERVERS.c).where(MOCK_SERVERS.c.id.in_(list(provider_ids)))
            )
            return [self._server(row) for row in rows]

    async def list_servers(self) -> list[ProviderServer]:
        # Plain rows, not ORM objects: the health loop lists thousands of servers a pass.
        async with self._session() as session:
            rows = await session.execute(
                select(*MOCK_SERVERS.c).where(MOCK_SERVERS.c.deleted_at.is_(None))
            )
            return [self._server(row) for row in rows]

    async def list_volumes(self, server_id: str | None = None) -> list[ProviderVolume]:
        query = select(*MOCK_VOLUMES.c).where(MOCK_VOLUMES.c.deleted_at.is_(None))
        if server_id is not None:
            query = query.where(MOCK_VOLUMES.c.server_id == server_id)
        async with self._session() as session:
            return [_volume(row) for row in await session.execute(query)]

    async def delete_volume(self, provider_id: str) -> None:
        async with self._session() as session:
            await session.execute(
                update(MockVolume)
                .where(MockVolume.id == provider_id, MockVolume.deleted_at.is_(None))
                .values(deleted_at=datetime.now(UTC))
            )
            await session.commit()

    async def sync_catalog(self) -> list[CatalogType]:
        return list(self.catalog)

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


def _volume(row: Row[Any]) -> ProviderVolume:
    return ProviderVolume(row.id, row.name, row.zone, row.size_gb, row.server_id, row.volume_type)
