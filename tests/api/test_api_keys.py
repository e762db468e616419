"""API keys: shown once, stored hashed, usable as Bearer, revocable, scoped."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from tests.api.conftest import World, create_user


def _bearer(world: World, key: str) -> httpx.Client:
    return httpx.Client(base_url=world.api.base_url, headers={"Authorization": f"Bearer {key}"})


def test_key_lifecycle(world: World, database_url: str) -> None:
    created = world["user"].post(
        "/api_keys", json={"name": "ci", "allowed_models": ["inventiv/mock-echo"]}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    key = body["key"]
    assert key.startswith("ia_") and body["key_prefix"] == key[:12]

    listed = world["user"].get("/api_keys").json()
    assert key not in str(listed) and body["id"] in [k["id"] for k in listed]

    async def stored() -> tuple[str, str | None]:
        conn = await asyncpg.connect(database_url)
        row = await conn.fetchrow(
            "SELECT key_hash, last_used_at FROM api_keys WHERE id = $1", uuid.UUID(body["id"])
        )
        await conn.close()
        return row["key_hash"], row["last_used_at"]

    key_hash, last_used = asyncio.run(stored())
    assert key_hash == hashlib.sha256(key.encode()).hexdigest() and last_used is None

    client = _bearer(world, key)
    me = client.get("/auth/me").json()
    assert me["username"] == world.passwords["user"][0]
    assert me["current_organization_id"] == str(world.org_a)
    assert client.get("/instances").status_code == 200
    assert client.put("/organizations/current", json={"organization_id": None}).status_code == 400
    assert asyncio.run(stored())[1] is not None  # last use recorded

    assert world["user"].delete(f"/api_keys/{body['id']}").status_code == 204
    revoked = client.get("/auth/me")
    assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "unauthenticated"


def test_keys_are_private_to_their_creator_unless_admin(world: World) -> None:
    mine = world["manager"].post("/api_keys", json={"name": "manager key"}).json()
    assert mine["id"] not in [k["id"] for k in world["user"].get("/api_keys").json()]
    assert world["user"].delete(f"/api_keys/{mine['id']}").status_code == 404
    assert mine["id"] in [k["id"] for k in world["admin"].get("/api_keys").json()]
    assert world["other_owner"].delete(f"/api_keys/{mine['id']}").status_code == 404
    assert mine["id"] not in [k["id"] for k in world["other_owner"].get("/api_keys").json()]
    assert world["admin"].delete(f"/api_keys/{mine['id']}").status_code == 204


def test_expired_and_garbage_keys_are_refused(world: World) -> None:
    soon = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    assert (
        world["user"].post("/api_keys", json={"name": "past", "expires_at": soon}).status_code
        == 422
    )
    for garbage in ("ia_" + "x" * 43, "not-a-key", "ia_"):
        assert _bearer(world, garbage).get("/auth/me").status_code == 401
    basic = httpx.Client(base_url=world.api.base_url, headers={"Authorization": "Basic abc"})
    assert basic.get("/auth/me").status_code == 401


def test_unknown_allowed_models_are_refused(world: World) -> None:
    response = world["user"].post("/api_keys", json={"name": "x", "allowed_models": ["nope/nope"]})
    assert response.status_code == 422 and response.json()["error"]["code"] == "unknown_models"


def test_a_key_follows_its_creators_membership(world: World) -> None:
    name = f"keyholder-{uuid.uuid4().hex[:6]}"
    create_user(world["owner"], name)
    invitation = (
        world["owner"]
        .post(
            "/organizations/current/invitations",
            json={"email": f"{name}@example.test", "role": "admin"},
        )
        .json()
    )
    holder = world.api.login(name)
    assert (
        holder.post(f"/organizations/invitations/{invitation['token']}/accept").status_code == 200
    )
    key = holder.post("/api_keys", json={"name": "admin key"}).json()["key"]
    client = _bearer(world, key)
    assert client.put("/provider_settings/mock", json={"values": {}}).status_code == 200
    holder_id = holder.get("/auth/me").json()["id"]
    assert (
        world["owner"]
        .put(f"/organizations/current/members/{holder_id}", json={"role": "user"})
        .status_code
        == 204
    )
    assert client.put("/provider_settings/mock", json={"values": {}}).status_code == 403
    assert world["owner"].delete(f"/organizations/current/members/{holder_id}").status_code == 204
    assert client.get("/auth/me").status_code == 401


def test_a_platform_admins_key_does_not_administer_the_platform(world: World) -> None:
    owner = world["owner"]  # also the platform admin
    created = owner.post("/api_keys", json={"name": "platform-admin-key"})
    assert created.status_code == 201, created.text
    with world.api.client({"Authorization": f"Bearer {created.json()['key']}"}) as keyed:
        assert keyed.get("/instances").status_code == 200  # the organization's work: yes
        for path in ("/users", "/admin/status", "/audit_logs/platform"):
            refused = keyed.get(path)
            assert refused.status_code == 403, path
            assert "not an API key" in refused.json()["error"]["message"]
    assert owner.get("/users").status_code == 200  # the session may
