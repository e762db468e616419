"""The orchestrator's app factory."""

from __future__ import annotations

import time

from fastapi import Depends, FastAPI, Request

from inventiv_common.bus import ORCHESTRATOR_CHANNEL
from inventiv_common.dispatch import BusConsumer, Dispatcher
from inventiv_common.version import version_info
from inventiv_common.web import build_service_app, check_readiness, public_route, resources_of
from inventiv_orchestrator.settings import OrchestratorSettings, get_settings


def create_app(settings: OrchestratorSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    dispatcher = Dispatcher()
    consumer = BusConsumer([ORCHESTRATOR_CHANNEL], dispatcher)
    app = build_service_app(
        settings,
        title="inventiv-orchestrator",
        description="Inventiv Agents control plane: commands, lifecycle loops, workers.",
        migrate_on_boot=settings.migrate_on_boot,
        on_startup=[consumer.start],
    )
    app.state.dispatcher = dispatcher

    # The orchestrator's port is internal (compose network, loopback in dev).
    @app.get(
        "/admin/status",
        tags=["service"],
        dependencies=[Depends(public_route)],
        summary="What this orchestrator is doing",
    )
    async def admin_status(request: Request) -> dict[str, object]:
        resources = resources_of(request)
        return {
            "service": "inventiv-orchestrator",
            **version_info(),
            "uptime_s": round(time.time() - resources.started_at, 1),
            "dependencies": await check_readiness(resources),
            "bus": consumer.status(),
        }

    return app
