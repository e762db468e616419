"""The finops service's app factory.

It never migrates: the api and the orchestrator own the schema, and /readyz stays
503 until the schema is at the revision this build expects. Its one loop bills
minutes, prices usage and checks budgets; a usage batch recorded by the gateway wakes
it, and it runs every FINOPS_INTERVAL_S anyway.
"""

from __future__ import annotations

import asyncio

from fastapi import Depends, FastAPI, Request

from inventiv_common.bus import Envelope
from inventiv_common.dispatch import BusConsumer, Dispatcher
from inventiv_common.messages import EVT_INFERENCE_USAGE_RECORDED, channels_heard_by
from inventiv_common.status import process_status
from inventiv_common.web import (
    ServiceResources,
    build_service_app,
    public_route,
    resources_of,
)
from inventiv_finops.loop import FinopsLoop
from inventiv_finops.settings import FinopsSettings, get_settings


def create_app(settings: FinopsSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    dispatcher = Dispatcher()
    consumer = BusConsumer(channels_heard_by("finops"), dispatcher)
    stop = asyncio.Event()

    async def start_finops(resources: ServiceResources) -> None:
        loop = FinopsLoop(
            resources.session_factory, resources.bus, interval_s=settings.finops_interval_s
        )
        app.state.loop = loop

        async def wake(_envelope: Envelope) -> None:
            loop.wake()

        dispatcher.register(EVT_INFERENCE_USAGE_RECORDED, wake)
        resources.spawn(loop.run(stop), name="loop:finops")

    app = build_service_app(
        settings,
        title="inventiv-finops",
        description="Inventiv Agents costs: GPU minutes, forecasts and token usage.",
        migrate_on_boot=False,
        on_startup=[start_finops, consumer.start],
    )
    app.state.dispatcher = dispatcher
    app.state.consumer = consumer

    # The finops port is internal (compose network, loopback in dev), as the orchestrator's.
    @app.get(
        "/admin/status",
        tags=["service"],
        dependencies=[Depends(public_route)],
        summary="What this finops process is doing",
    )
    async def admin_status(request: Request) -> dict[str, object]:
        loops = {"finops": app.state.loop} if hasattr(app.state, "loop") else {}
        return await process_status("inventiv-finops", resources_of(request), consumer, loops)

    return app
