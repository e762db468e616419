"""The finops service's app factory.

It never migrates: the api and the orchestrator own the schema, and /readyz stays
503 until the schema is at the revision this build expects.
"""

from __future__ import annotations

from fastapi import FastAPI

from inventiv_common.bus import FINOPS_CHANNEL
from inventiv_common.dispatch import BusConsumer, Dispatcher
from inventiv_common.web import build_service_app
from inventiv_finops.settings import FinopsSettings, get_settings


def create_app(settings: FinopsSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    dispatcher = Dispatcher()
    consumer = BusConsumer([FINOPS_CHANNEL], dispatcher)
    app = build_service_app(
        settings,
        title="inventiv-finops",
        description="Inventiv Agents costs: GPU minutes, forecasts and token usage.",
        migrate_on_boot=False,
        on_startup=[consumer.start],
    )
    app.state.dispatcher = dispatcher
    app.state.consumer = consumer
    return app
