"""The orchestrator's app factory: worker endpoints, command handlers, lifecycle loops."""

from __future__ import annotations

import asyncio
from functools import partial

import httpx
from fastapi import Depends, FastAPI, Request

from inventiv_common.bus import Envelope
from inventiv_common.crypto import KeyRing
from inventiv_common.dispatch import BusConsumer, Dispatcher
from inventiv_common.messages import (
    CMD_CHECK_CREDENTIALS,
    CMD_PROVISION,
    CMD_RECONCILE,
    CMD_SYNC_CATALOG,
    CMD_TERMINATE,
    EVT_WORKER_TOKENS_REVOKED,
    channels_heard_by,
)
from inventiv_common.status import process_status
from inventiv_common.web import (
    ServiceResources,
    build_service_app,
    public_route,
    resources_of,
)
from inventiv_orchestrator.accounts import Accounts
from inventiv_orchestrator.context import Context, build_providers
from inventiv_orchestrator.credentials import check_credentials
from inventiv_orchestrator.loops.base import Loop
from inventiv_orchestrator.loops.catalog import CatalogLoop
from inventiv_orchestrator.loops.health import HealthLoop
from inventiv_orchestrator.loops.provisioning import ProvisioningLoop
from inventiv_orchestrator.loops.storage import StorageLoop
from inventiv_orchestrator.loops.terminator import TerminatorLoop
from inventiv_orchestrator.loops.watchdog import WatchdogLoop
from inventiv_orchestrator.settings import OrchestratorSettings, get_settings
from inventiv_orchestrator.vm_boot import user_data_for
from inventiv_orchestrator.workers.heartbeats import HeartbeatBuffer, HeartbeatWriter
from inventiv_orchestrator.workers.revocations import RevocationNotices
from inventiv_orchestrator.workers.router import WorkerEndpoints


def create_app(settings: OrchestratorSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    dispatcher = Dispatcher()
    consumer = BusConsumer(channels_heard_by("orchestrator"), dispatcher)
    heartbeats = HeartbeatBuffer()
    loops: dict[str, Loop] = {}
    stop = asyncio.Event()

    async def start_lifecycle(resources: ServiceResources) -> None:
        keyring = KeyRing(settings.secret("provider_settings_key"))
        accounts = Accounts(
            settings,
            resources.session_factory,
            keyring,
            platform=build_providers(settings, resources.session_factory),
            user_data=user_data_for(settings),
        )
        ctx = Context(
            settings=settings,
            session_factory=resources.session_factory,
            bus=resources.bus,
            keyring=keyring,
            providers=accounts.platform,
            http=httpx.AsyncClient(),
            accounts=accounts,
        )
        app.state.ctx = ctx
        resources.on_shutdown.append(ctx.http.aclose)
        # What the last flush interval received is written before the pool closes.
        resources.on_shutdown.append(lambda: heartbeats.flush(resources.session_factory))
        health = HealthLoop(ctx)
        catalog = CatalogLoop(ctx, settings.catalog_sync_interval_s)
        storage = StorageLoop(ctx, settings.watchdog_interval_s)
        revocations = RevocationNotices(ctx)
        loops.update(
            provisioning=ProvisioningLoop(ctx),
            health=health,
            terminator=TerminatorLoop(ctx),
            watchdog=WatchdogLoop(ctx, settings.watchdog_interval_s, storage.wake),
            storage=storage,
            catalog=catalog,
            revocations=revocations,
            heartbeats=HeartbeatWriter(
                heartbeats,
                resources.session_factory,
                settings.heartbeat_flush_interval_s,
                on_phase_change=health.wake,
            ),
        )

        def waking(*names: str):
            async def handler(_envelope: Envelope) -> None:
                for name in names:
                    loops[name].wake()

            return handler

        async def reconcile(envelope: Envelope) -> None:
            health.request_sweep()  # every instance, not only those that look in trouble
            await waking("provisioning", "terminator", "watchdog", "storage")(envelope)

        async def sync_catalog(envelope: Envelope) -> None:
            catalog.request(envelope.organization_id)  # its outcome goes to that workspace

        # A command only wakes the loop that owns the work: the loop finds it in the
        # database, so a lost command delays it by one interval at most.
        dispatcher.register(CMD_PROVISION, waking("provisioning"))
        dispatcher.register(CMD_TERMINATE, waking("terminator"))
        dispatcher.register(CMD_RECONCILE, reconcile)
        dispatcher.register(CMD_SYNC_CATALOG, sync_catalog)
        dispatcher.register(CMD_CHECK_CREDENTIALS, partial(check_credentials, ctx))
        dispatcher.register(EVT_WORKER_TOKENS_REVOKED, revocations.on_notice)
        for name, loop in loops.items():
            resources.spawn(loop.run(stop), name=f"loop:{name}")
        await consumer.start(resources)

    app = build_service_app(
        settings,
        title="inventiv-orchestrator",
        description="Inventiv Agents control plane: commands, lifecycle loops, workers.",
        migrate_on_boot=settings.migrate_on_boot,
        on_startup=[start_lifecycle],
        fast_paths=[WorkerEndpoints],
    )
    app.state.dispatcher = dispatcher
    app.state.heartbeats = heartbeats
    app.state.loops = loops

    # The orchestrator's port is internal (compose network, loopback in dev).
    @app.get(
        "/admin/status",
        tags=["service"],
        dependencies=[Depends(public_route)],
        summary="What this orchestrator is doing",
    )
    async def admin_status(request: Request) -> dict[str, object]:
        return await process_status(
            "inventiv-orchestrator",
            resources_of(request),
            consumer,
            loops,
            heartbeats={"flushes": heartbeats.flushes, "rows_written": heartbeats.rows_written},
        )

    # The api asks there before it stores an organization's provider credentials.
    from inventiv_orchestrator.credentials_route import router as credentials_route

    app.include_router(credentials_route)
    return app
