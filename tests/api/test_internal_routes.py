"""The orchestrator's and finops' own routes, and the worker routes the api relays:
real requests to real processes get what the committed table says.

A worker route lets in only the worker secret its line names: no credentials, a user's
session, an API key or the other worker secret are all refused, directly at the
orchestrator and through the api's relay.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import text

from inventiv_common.agent_checksum import expected_agent_checksum
from inventiv_common.db.engine import make_engine
from tests.api.conftest import ServiceProcess, World, start_internal_service
from tests.api.permission_table import Row, committed_rows
from tests.support.instances import installing_instance

ROWS = committed_rows()
OPEN_ROWS = [r for r in ROWS if r.service != "api" and r.who == "anonymous"]
WORKER_ROWS = [r for r in ROWS if r.who.startswith("worker ")]
# A request each open route with parameters or a body answers 200 to.
EXAMPLES: dict[str, tuple[str, object]] = {
    "/internal/providers/{code}/credentials/check": (
        "/internal/providers/mock/credentials/check",
        {"organization_id": str(uuid.uuid4()), "values": {}},
    ),
}


@pytest.fixture(scope="module")
def finops(
    control_plane_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("finops") / "finops.log"
    process = start_internal_service(
        "inventiv_finops", "FINOPS_PORT", control_plane_database_url, log
    )
    process.wait_ready()
    yield process
    process.stop()


@pytest.fixture
def base_urls(world: World, orchestrator: ServiceProcess, finops: ServiceProcess) -> dict[str, str]:
    return {
        "api": world.api.base_url,
        "orchestrator": orchestrator.base_url,
        "finops": finops.base_url,
    }


@pytest.fixture
async def worker_secrets(
    control_plane_database_url: str, orchestrator: ServiceProcess
) -> AsyncIterator[dict[str, str]]:
    """A new instance's bootstrap secret and the worker token its registration got.

    Its Mock server exists and is still starting: the orchestrator's health loop, which
    a registration wakes, fails an instance whose server is gone, and refuses the
    registrations of a failed one."""
    engine = make_engine(control_plane_database_url, pool_size=1)
    try:
        instance_id, bootstrap_secret = await installing_instance(engine)
        async with engine.begin() as conn:
            server_id = f"mock-{uuid.uuid4().hex[:12]}"
            await conn.execute(
                text(
                    "INSERT INTO mock_servers (id, name, zone, commercial_type, status, runtime) "
                    "VALUES (:id, :name, 'local-1', 'MOCK-GPU-S', 'starting', 'process')"
                ),
                {"id": server_id, "name": str(instance_id)},
            )
            await conn.execute(
                text("UPDATE instances SET provider_instance_id = :server WHERE id = :id"),
                {"server": server_id, "id": instance_id},
            )
    finally:
        await engine.dispose()
    body = {"instance_id": str(instance_id), "agent_checksum": expected_agent_checksum()}
    async with httpx.AsyncClient(base_url=orchestrator.base_url, timeout=30) as client:
        registered = await client.post(
            "/internal/worker/register",
            json=body,
            headers={"Authorization": f"Bearer {bootstrap_secret}"},
        )
    assert registered.status_code == 200, registered.text
    yield {
        "instance_id": str(instance_id),
        "bootstrap-secret": bootstrap_secret,
        "token": registered.json()["token"],
    }


@pytest.fixture(scope="module")
def api_key(world: World) -> Iterator[str]:
    created = world["owner"].post("/api_keys", json={"name": f"internal-{uuid.uuid4().hex[:6]}"})
    assert created.status_code == 201, created.text
    yield created.json()["key"]
    world["owner"].delete(f"/api_keys/{created.json()['id']}")


@pytest.mark.parametrize("row", OPEN_ROWS, ids=lambda r: f"{r.service} {r.method} {r.path}")
def test_internal_service_route_answers_anyone(row: Row, base_urls: dict[str, str]) -> None:
    path, body = EXAMPLES.get(row.path, (row.path, None))
    response = httpx.request(row.method, base_urls[row.service] + path, json=body, timeout=30)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("row", WORKER_ROWS, ids=lambda r: f"{r.service} {r.method} {r.path}")
def test_worker_route_lets_in_only_its_worker_secret(
    row: Row,
    base_urls: dict[str, str],
    worker_secrets: dict[str, str],
    world: World,
    api_key: str,
) -> None:
    wanted = row.who.split()[1]
    other = "token" if wanted == "bootstrap-secret" else "bootstrap-secret"
    session_token = world["owner"].cookies["inventiv_session"]
    refused = {
        "no credentials": {},
        "a user's session": {"Authorization": f"Bearer {session_token}"},
        "an API key": {"Authorization": f"Bearer {api_key}"},
        f"the worker's {other}": {"Authorization": f"Bearer {worker_secrets[other]}"},
    }
    url = base_urls[row.service] + row.path
    body = {"instance_id": worker_secrets["instance_id"]}
    for credential, headers in refused.items():
        response = httpx.post(url, json=body, headers=headers, timeout=30)
        assert response.status_code == 401, (credential, response.status_code, response.text)
    allowed = {"Authorization": f"Bearer {worker_secrets[wanted]}"}
    response = httpx.post(url, json=body, headers=allowed, timeout=30)
    assert response.status_code == 200, response.text
