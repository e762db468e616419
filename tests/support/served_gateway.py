"""A live api's gateway serving the mock model from a real mock engine process: a
workspace of its own, its API key, and one ready instance whose engine is that process.

No orchestrator is needed: the instance row is written ready, with its engine key sealed
as the api seals it, and the gateway's route table picks it up within a second.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openai
from sqlalchemy import select

from inventiv_common import instance_secrets
from inventiv_common.crypto import KeyRing
from inventiv_common.db.engine import make_engine, make_session_factory
from inventiv_common.db.models import Instance, InstanceType, Model, Zone
from inventiv_common.settings import DEV_SECRET_FALLBACK
from tests.support.mock_engine import MOCK_MODEL, MockEngineProcess

# The key ring of an api started by tests/api/conftest.py (no PROVIDER_SETTINGS_KEY).
KEYRING = KeyRing(DEV_SECRET_FALLBACK)


@dataclass
class ServedGateway:
    base_url: str
    key: str
    organization_id: uuid.UUID
    engine: MockEngineProcess
    http: httpx.Client

    def ai(self, **options: Any) -> openai.OpenAI:
        """The official client, unchanged, against the gateway."""
        return openai.OpenAI(
            base_url=f"{self.base_url}/v1", api_key=self.key, max_retries=0, **options
        )

    def post(
        self,
        path: str,
        body: Any = None,
        *,
        content: bytes | None = None,
        content_type: str | None = "application/json",
    ) -> httpx.Response:
        """A raw POST: `body` as JSON, or `content` as given, with `content_type`."""
        headers = {"Authorization": f"Bearer {self.key}"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if content is None:
            content = json.dumps(body).encode()
        return self.http.post(f"/v1{path}", content=content, headers=headers)


async def _ready_instance(database_url: str, organization_id: uuid.UUID) -> tuple[uuid.UUID, str]:
    """A ready instance of the mock model, not yet reachable (no engine port)."""
    engine = make_engine(database_url, pool_size=1)
    try:
        async with make_session_factory(engine)() as session:
            model = await session.scalar(select(Model).where(Model.model_id == MOCK_MODEL))
            itype = await session.scalar(
                select(InstanceType).where(InstanceType.code == "MOCK-GPU-S")
            )
            zone = await session.scalar(select(Zone).where(Zone.code == "local-1"))
            assert model and itype and zone
            instance = Instance(
                organization_id=organization_id,
                provider_id=itype.provider_id,
                instance_type_id=itype.id,
                zone_id=zone.id,
                model_id=model.id,
                status="ready",
                ip_address="127.0.0.1",
            )
            session.add(instance)
            await session.flush()
            engine_key = instance_secrets.ensure(instance, KEYRING).engine_key
            await session.commit()
            return instance.id, engine_key
    finally:
        await engine.dispose()


async def _execute(database_url: str, query: str, *args: object) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(query, *args)
    finally:
        await conn.close()


@contextmanager
def served_gateway(
    base_url: str, owner: httpx.Client, database_url: str, tmp_path: Path
) -> Iterator[ServedGateway]:
    """`owner` (a platform admin's client) makes a user, who makes the workspace."""
    name = f"gw-{uuid.uuid4().hex[:8]}"
    password = "a-long-enough-password"
    created = owner.post(
        "/users",
        json={"username": name, "email": f"{name}@example.test", "password": password},
    )
    assert created.status_code == 201, created.text
    with httpx.Client(base_url=base_url, headers={"Origin": base_url}, timeout=30) as user:
        assert user.post("/auth/login", json={"username": name, "password": password}).is_success
        org = user.post("/organizations", json={"name": f"{name} org"})
        assert org.status_code == 201, org.text
        organization_id = uuid.UUID(org.json()["id"])
        switched = user.put(
            "/organizations/current", json={"organization_id": str(organization_id)}
        )
        assert switched.status_code == 204, switched.text
        key = user.post("/api_keys", json={"name": "gateway"})
        assert key.status_code == 201, key.text
        api_key = str(key.json()["key"])
    instance_id, engine_key = asyncio.run(_ready_instance(database_url, organization_id))
    engine = MockEngineProcess(tmp_path, "--api-key", engine_key)
    http = httpx.Client(base_url=base_url, timeout=60)
    try:
        asyncio.run(
            _execute(
                database_url,
                "UPDATE instances SET worker_engine_port = $1 WHERE id = $2",
                engine.port,
                instance_id,
            )
        )
        served = ServedGateway(base_url, api_key, organization_id, engine, http)
        deadline = time.monotonic() + 30
        auth = {"Authorization": f"Bearer {api_key}"}
        while MOCK_MODEL not in http.get("/v1/models", headers=auth).text:
            assert time.monotonic() < deadline, "the gateway never routed to the instance"
            time.sleep(0.1)
        yield served
    finally:
        http.close()
        engine.stop()
        asyncio.run(
            _execute(
                database_url,
                "UPDATE instances SET status = 'terminated' WHERE id = $1",
                instance_id,
            )
        )
