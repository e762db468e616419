"""The api's app factory."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from fastapi import Depends, FastAPI

from inventiv_api.action_logs.router import router as action_logs_router
from inventiv_api.admin.router import router as admin_router
from inventiv_api.api_keys.router import router as api_keys_router
from inventiv_api.audit.router import router as audit_router
from inventiv_api.auth.router import router as auth_router
from inventiv_api.bootstrap_credentials import seed_default_credentials
from inventiv_api.catalog.router import router as catalog_router
from inventiv_api.deployments.router import router as deployments_router
from inventiv_api.errors import install_error_handlers
from inventiv_api.finops.router import router as finops_router
from inventiv_api.gateway.asgi import Gateway, GatewayState
from inventiv_api.gateway.metering import Meter, open_journal
from inventiv_api.gateway.openapi import OPENAPI_PATHS as GATEWAY_PATHS
from inventiv_api.gateway.routing import RouteRefresh, RouteTable
from inventiv_api.gateway.upstream import UpstreamPool
from inventiv_api.identity.bootstrap import bootstrap_admin
from inventiv_api.instances.feed import InstanceFeed
from inventiv_api.instances.feed import router as instance_feed_router
from inventiv_api.instances.router import router as instances_router
from inventiv_api.middleware import BodySizeLimit, StorableText
from inventiv_api.models.router import router as models_router
from inventiv_api.organizations.router import router as organizations_router
from inventiv_api.provider_settings.router import router as provider_settings_router
from inventiv_api.security.ratelimit import RateLimiter
from inventiv_api.settings import ApiSettings, get_settings
from inventiv_api.spec import declare_errors, public_operations
from inventiv_api.users.router import router as users_router
from inventiv_api.worker_proxy import router as worker_proxy_router
from inventiv_common.bus import Envelope
from inventiv_common.crypto import KeyRing
from inventiv_common.db.seed import apply_sql_file, default_catalog_seed_path
from inventiv_common.dispatch import BusConsumer, Dispatcher
from inventiv_common.loops import Loop
from inventiv_common.messages import EVT_INSTANCE_STATUS_CHANGED, channels_heard_by
from inventiv_common.version import version_info
from inventiv_common.web import ServiceResources, build_service_app, public_route

log = logging.getLogger(__name__)

ROUTERS = (
    auth_router,
    users_router,
    organizations_router,
    api_keys_router,
    provider_settings_router,
    audit_router,
    instances_router,
    models_router,
    deployments_router,
    instance_feed_router,
    catalog_router,
    action_logs_router,
    finops_router,
    worker_proxy_router,
    admin_router,
)


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    keyring = KeyRing(settings.secret("provider_settings_key"))
    # One subscription for the whole process; its parts register what they hear.
    dispatcher = Dispatcher()
    consumer = BusConsumer(channels_heard_by("api"), dispatcher)
    instance_feed = InstanceFeed(consumer.subscribed)
    loops: dict[str, Loop] = {}  # every background loop of the process, for /admin/status
    dispatcher.register(EVT_INSTANCE_STATUS_CHANGED, instance_feed.on_instance_changed)

    async def seed_catalog(resources: ServiceResources) -> None:
        if settings.auto_seed_catalog:
            await apply_sql_file(resources.engine, default_catalog_seed_path())

    async def open_http(resources: ServiceResources) -> None:
        # One client for the process's own calls (the worker proxy).
        app.state.http = httpx.AsyncClient(limits=httpx.Limits(max_connections=1000))
        resources.on_shutdown.append(app.state.http.aclose)

    async def start_gateway(resources: ServiceResources) -> None:
        # Filled by its loop at once; a database hiccup at start-up must not stop the api.
        table, pool = RouteTable(resources.session_factory, keyring), UpstreamPool()
        routes = RouteRefresh(table, pool)
        # Its journal keeps what it took across a kill; what a dead api left is adopted.
        meter = Meter(resources.session_factory, resources.bus, journal=open_journal(settings))
        limiter = RateLimiter(resources.bus.redis, namespace=f"{settings.redis_channel_prefix}rl")
        app.state.gateway = GatewayState(table, pool, meter, limiter)
        resources.on_shutdown.append(pool.close)
        # What was metered since the last batch is written before the pool closes.
        resources.on_shutdown.append(meter.close)
        loops.update({"gateway-routes": routes, "gateway-meter": meter})
        for name, loop in loops.items():
            # Never set: at shutdown the service cancels its background tasks.
            resources.spawn(loop.run(asyncio.Event()), name=f"loop:{name}")

        # An instance that changed state is routed to (or not) at once.
        async def reroute(_envelope: Envelope) -> None:
            routes.wake()

        dispatcher.register(EVT_INSTANCE_STATUS_CHANGED, reroute)

    async def bootstrap(resources: ServiceResources) -> None:
        async with resources.session_factory() as session:
            if settings.default_admin_password is None:
                log.warning("DEFAULT_ADMIN_PASSWORD is not set: no admin bootstrapped")
            else:
                await bootstrap_admin(
                    session=session,
                    username=settings.default_admin_username,
                    email=settings.default_admin_email,
                    password=settings.default_admin_password.get_secret_value(),
                    organization_name=settings.default_organization_name,
                )
            if settings.auto_seed_provider_credentials:
                await seed_default_credentials(session=session, settings=settings, keyring=keyring)
            await session.commit()

    app = build_service_app(
        settings,
        title="inventiv-api",
        description="Inventiv Agents public API and OpenAI-compatible gateway.",
        migrate_on_boot=settings.migrate_on_boot,
        on_startup=[seed_catalog, bootstrap, open_http, start_gateway, consumer.start],
        docs=True,
    )
    app.state.api_settings = settings
    app.state.consumer = consumer
    app.state.loops = loops
    app.state.instance_feed = instance_feed
    app.state.keyring = keyring
    # Inside the size limit, which bounds the body it reads.
    app.add_middleware(StorableText)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # Outermost: /v1/* never enters the FastAPI stack (it limits its own bodies).
    app.add_middleware(Gateway, settings=settings)
    fastapi_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = declare_errors(fastapi_openapi(), public_operations(app))
            schema["paths"].update(GATEWAY_PATHS)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    install_error_handlers(app)

    @app.get(
        "/api/version",
        tags=["service"],
        dependencies=[Depends(public_route)],
        summary="Backend version (alias of /version)",
    )
    async def api_version() -> dict[str, str]:
        return version_info()

    for router in ROUTERS:
        app.include_router(router)
    return app
