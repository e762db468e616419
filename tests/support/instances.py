"""Instances made for a test: a Mock server's spec, and a row waiting for its worker."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from inventiv_common.crypto import KeyRing
from inventiv_common.db.engine import make_session_factory
from inventiv_common.db.models import Instance
from inventiv_common.instance_secrets import ensure
from inventiv_common.providers.base import ServerSpec
from inventiv_common.settings import DEV_SECRET_FALLBACK
from tests.support.addresses import closed_url
from tests.support.mock_engine import MOCK_MODEL


def mock_spec(name: str, **overrides: Any) -> ServerSpec:
    """What the orchestrator would ask a provider for, for a Mock server."""
    fields: dict[str, Any] = {
        "name": name,
        "zone": "local-1",
        "instance_type": "MOCK-GPU-S",
        "model": MOCK_MODEL,
        "control_plane_url": closed_url(),
        "bootstrap_secret": "wb_test",
        "engine_key": "ek_test",
        **overrides,
    }
    return ServerSpec(**fields)


async def installing_instance(engine: AsyncEngine) -> tuple[uuid.UUID, str]:
    """An instance whose server is up, waiting for its worker; and its bootstrap secret."""
    async with engine.begin() as conn:
        org = (
            await conn.execute(
                text("INSERT INTO organizations (name, slug) VALUES ('Reg', :slug) RETURNING id"),
                {"slug": f"reg-{uuid.uuid4().hex[:8]}"},
            )
        ).scalar_one()
        ids = (
            await conn.execute(
                text(
                    "SELECT t.provider_id, t.id AS type_id, tz.zone_id, m.id AS model_id "
                    "FROM instance_types t JOIN instance_type_zones tz "
                    "ON tz.instance_type_id = t.id, models m "
                    "WHERE t.code = 'MOCK-GPU-S' AND m.model_id = 'inventiv/mock-echo'"
                )
            )
        ).one()
    instance = Instance(
        id=uuid.uuid4(),
        organization_id=org,
        provider_id=ids.provider_id,
        instance_type_id=ids.type_id,
        zone_id=ids.zone_id,
        model_id=ids.model_id,
        status="installing",
        progress_steps=[],
    )
    secret = ensure(instance, KeyRing(DEV_SECRET_FALLBACK)).bootstrap_secret
    async with make_session_factory(engine)() as session:
        session.add(instance)
        await session.commit()
    return instance.id, secret
