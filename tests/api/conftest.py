"""A live api process for the whole module set, and the people and data it serves.

The world: organization A ("Inventiv IT", bootstrapped with the platform admin as its
owner) with an admin, a manager and a user who joined through invitations;
organization B with its own owner. Instances and private models exist in both.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from inventiv_common.net import free_port
from tests.support.databases import create_migrated_database, drop_database
from tests.support.processes import ServiceProcess, clean_env
from tests.support.redis_servers import REDIS_URL

ADMIN_PASSWORD = "admin-password-for-tests"
PASSWORD = "a-long-enough-password"
ALLOWED_ORIGIN = "http://console.test"


@dataclass
class LiveApi:
    base_url: str
    process: ServiceProcess

    def client(self, headers: dict[str, str] | None = None) -> httpx.Client:
        # Browsers send Origin on writes; our own origin is always allowed.
        return httpx.Client(
            base_url=self.base_url, headers={"Origin": self.base_url, **(headers or {})}, timeout=30
        )

    def login(self, username: str, password: str = PASSWORD) -> httpx.Client:
        client = self.client()
        response = client.post("/auth/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        return client


def start_api(database_url: str, log_path: Path, **env: str) -> LiveApi:
    port = free_port()
    process = ServiceProcess(
        "inventiv_api",
        port,
        clean_env(
            **{
                "DATABASE_URL": database_url,
                "REDIS_URL": REDIS_URL,
                "REDIS_CHANNEL_PREFIX": f"test-{uuid.uuid4().hex[:8]}:",
                "INVENTIV_ENV": "test",
                "API_PORT": str(port),
                "DEFAULT_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "ALLOWED_ORIGINS": ALLOWED_ORIGIN,
                "LOGIN_RATE_LIMIT_PER_IP": "100000",
                **env,
            }
        ),
        log_path,
    )
    process.wait_ready()
    return LiveApi(process.base_url, process)


@pytest.fixture(scope="session")
async def control_plane_database_url() -> AsyncIterator[str]:
    """The database of the orchestrator and finops beside the api: their loops act on
    every instance they find, and the world's are rows made ready without a worker."""
    url = await create_migrated_database()
    yield url
    await drop_database(url)


def start_internal_service(
    module: str, port_env: str, database_url: str, log_path: Path
) -> ServiceProcess:
    """The orchestrator or finops, on an address and a bus prefix of their own."""
    port = free_port()
    env = clean_env(
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
        REDIS_CHANNEL_PREFIX=f"test-{uuid.uuid4().hex[:8]}:",
        INVENTIV_ENV="test",
        **{port_env: str(port)},
    )
    return ServiceProcess(module, port, env, log_path)


@pytest.fixture(scope="session")
def orchestrator(
    control_plane_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """A real orchestrator behind the api's worker relay: what a call to
    /internal/worker/* gets through the api is the orchestrator's own answer."""
    log = tmp_path_factory.mktemp("orchestrator") / "orchestrator.log"
    process = start_internal_service(
        "inventiv_orchestrator", "ORCHESTRATOR_PORT", control_plane_database_url, log
    )
    process.wait_ready()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def api(
    database_url: str, orchestrator: ServiceProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveApi]:
    log = tmp_path_factory.mktemp("api") / "api.log"
    live = start_api(database_url, log, ORCHESTRATOR_URL=orchestrator.base_url)
    yield live
    live.process.stop()


@dataclass
class World:
    api: LiveApi
    org_a: uuid.UUID
    org_b: uuid.UUID
    users: dict[str, uuid.UUID] = field(default_factory=dict)
    clients: dict[str, httpx.Client] = field(default_factory=dict)
    instance_a: uuid.UUID | None = None
    instance_b: uuid.UUID | None = None
    model_a: uuid.UUID | None = None
    model_b: uuid.UUID | None = None

    passwords: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __getitem__(self, actor: str) -> httpx.Client:
        return self.clients[actor]

    def fresh_session(self, actor: str) -> httpx.Client:
        """A second, separate login of the same person."""
        return self.api.login(*self.passwords[actor])


def create_user(admin: httpx.Client, username: str, role: str = "user") -> uuid.UUID:
    response = admin.post(
        "/users",
        json={
            "username": username,
            "email": f"{username}@example.test",
            "password": PASSWORD,
            "role": role,
        },
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


def invite_and_join(api: LiveApi, inviter: httpx.Client, username: str, role: str) -> httpx.Client:
    invitation = inviter.post(
        "/organizations/current/invitations",
        json={"email": f"{username}@example.test", "role": role},
    )
    assert invitation.status_code == 201, invitation.text
    member = api.login(username)
    accepted = member.post(f"/organizations/invitations/{invitation.json()['token']}/accept")
    assert accepted.status_code == 200, accepted.text
    return member


async def _insert_resources(
    database_url: str, org_a: uuid.UUID, org_b: uuid.UUID
) -> list[uuid.UUID]:
    """Instances and private models cannot be created through the API yet (the lifecycle
    work adds deployments), so they are inserted directly."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        provider = await conn.fetchval("SELECT id FROM providers WHERE code = 'mock'")
        ids = []
        for org in (org_a, org_b):
            ids.append(
                await conn.fetchval(
                    "INSERT INTO instances (organization_id, provider_id, status) "
                    "VALUES ($1, $2, 'ready') RETURNING id",
                    org,
                    provider,
                )
            )
            ids.append(
                await conn.fetchval(
                    "INSERT INTO models (organization_id, name, model_id) "
                    "VALUES ($1, 'Private', $2) RETURNING id",
                    org,
                    f"private/{uuid.uuid4().hex[:8]}",
                )
            )
        return ids
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def world(api: LiveApi, database_url: str) -> Iterator[World]:
    suffix = uuid.uuid4().hex[:6]
    owner = api.login("admin", ADMIN_PASSWORD)
    me = owner.get("/auth/me").json()
    org_a = uuid.UUID(me["current_organization_id"])
    users = {"owner": uuid.UUID(me["id"])}
    for role in ("admin", "manager", "user"):
        users[role] = create_user(owner, f"{role}-{suffix}")
    users["other_owner"] = create_user(owner, f"other-{suffix}")
    users["outsider"] = create_user(owner, f"outsider-{suffix}")
    clients = {"owner": owner}
    for role in ("admin", "manager", "user"):
        clients[role] = invite_and_join(api, owner, f"{role}-{suffix}", role)
    other = api.login(f"other-{suffix}")
    created = other.post("/organizations", json={"name": f"Other {suffix}"})
    assert created.status_code == 201, created.text
    org_b = uuid.UUID(created.json()["id"])
    assert (
        other.put("/organizations/current", json={"organization_id": str(org_b)}).status_code == 204
    )
    clients["other_owner"] = other
    clients["outsider"] = api.login(f"outsider-{suffix}")  # Personal workspace only
    clients["anonymous"] = api.client()
    instance_a, model_a, instance_b, model_b = asyncio.run(
        _insert_resources(database_url, org_a, org_b)
    )
    world = World(api, org_a, org_b, users, clients, instance_a, instance_b, model_a, model_b)
    world.passwords = {"owner": ("admin", ADMIN_PASSWORD)} | {
        actor: (f"{name}-{suffix}", PASSWORD)
        for actor, name in (
            ("admin", "admin"),
            ("manager", "manager"),
            ("user", "user"),
            ("other_owner", "other"),
            ("outsider", "outsider"),
        )
    }
    yield world
    for client in clients.values():
        client.close()
