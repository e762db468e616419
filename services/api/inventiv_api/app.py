"""The api's app factory."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from inventiv_api.identity.bootstrap import bootstrap_admin
from inventiv_api.settings import ApiSettings, get_settings
from inventiv_common.db.seed import apply_sql_file, default_catalog_seed_path
from inventiv_common.version import version_info
from inventiv_common.web import ServiceResources, build_service_app

log = logging.getLogger(__name__)


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or get_settings()

    async def seed_catalog(resources: ServiceResources) -> None:
        if settings.auto_seed_catalog:
            await apply_sql_file(resources.engine, default_catalog_seed_path())

    async def bootstrap(resources: ServiceResources) -> None:
        if settings.default_admin_password is None:
            log.warning("DEFAULT_ADMIN_PASSWORD is not set: no admin bootstrapped")
            return
        async with resources.session_factory() as session:
            await bootstrap_admin(
                session=session,
                username=settings.default_admin_username,
                email=settings.default_admin_email,
                password=settings.default_admin_password.get_secret_value(),
                organization_name=settings.default_organization_name,
            )
            await session.commit()

    app = build_service_app(
        settings,
        title="inventiv-api",
        description="Inventiv Agents public API and OpenAI-compatible gateway.",
        migrate_on_boot=settings.migrate_on_boot,
        on_startup=[seed_catalog, bootstrap],
        docs=True,
    )

    @app.get("/api/version", tags=["service"], summary="Backend version (alias of /version)")
    async def api_version() -> dict[str, str]:
        return version_info()

    return app
