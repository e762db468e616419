"""Nothing of one organization can be read, changed or confirmed to exist by another;
double activation splits technical (owner/admin) from economic (owner/manager)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from tests.api.conftest import World


async def _snapshot(database_url: str, world: World) -> list[tuple[object, ...]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = [
            tuple(
                await conn.fetchrow(
                    "SELECT technical_activation, economic_activation FROM instances WHERE id = $1",
                    world.instance_a,
                )
            ),
            tuple(
                await conn.fetchrow(
                    "SELECT technical_activation, economic_activation FROM models WHERE id = $1",
                    world.model_a,
                )
            ),
            tuple(
                await conn.fetch(
                    "SELECT id, revoked_at FROM api_keys WHERE organization_id = $1 ORDER BY id",
                    world.org_a,
                )
            ),
            tuple(
                await conn.fetch(
                    "SELECT user_id, role FROM organization_memberships "
                    "WHERE organization_id = $1 ORDER BY user_id",
                    world.org_a,
                )
            ),
        ]
    finally:
        await conn.close()
    return rows


def test_foreign_ids_are_not_found_and_nothing_changes(world: World, database_url: str) -> None:
    key = world["user"].post("/api_keys", json={"name": "target"}).json()
    invitation = (
        world["owner"]
        .post("/organizations/current/invitations", json={"email": "target@example.test"})
        .json()
    )
    before = asyncio.run(_snapshot(database_url, world))
    other = world["other_owner"]
    attempts = [
        ("GET", f"/instances/{world.instance_a}", None),
        ("PUT", f"/instances/{world.instance_a}/activation/technical", {"active": False}),
        ("PUT", f"/instances/{world.instance_a}/activation/economic", {"active": False}),
        ("GET", f"/models/{world.model_a}", None),
        ("PUT", f"/models/{world.model_a}/activation/technical", {"active": False}),
        ("PUT", f"/models/{world.model_a}/activation/economic", {"active": False}),
        ("DELETE", f"/api_keys/{key['id']}", None),
        ("DELETE", f"/organizations/current/invitations/{invitation['id']}", None),
        ("PUT", f"/organizations/current/members/{world.users['user']}", {"role": "owner"}),
        ("DELETE", f"/organizations/current/members/{world.users['user']}", None),
    ]
    for method, path, body in attempts:
        response = other.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "not_found"
    # And the lists show none of A's rows.
    assert str(world.instance_a) not in other.get("/instances").text
    assert str(world.model_a) not in other.get("/models").text
    assert key["id"] not in other.get("/api_keys").text
    assert invitation["id"] not in other.get("/organizations/current/invitations").text
    audit = other.get("/audit_logs").json()
    assert all(entry["organization_id"] == str(world.org_b) for entry in audit["items"])
    assert asyncio.run(_snapshot(database_url, world)) == before
    # Public models stay visible to everyone.
    assert "inventiv/mock-echo" in other.get("/models").text


def test_double_activation(world: World) -> None:
    path = f"/instances/{world.instance_a}/activation"
    assert world["manager"].put(f"{path}/technical", json={"active": False}).status_code == 403
    assert world["admin"].put(f"{path}/economic", json={"active": False}).status_code == 403
    assert world["user"].put(f"{path}/technical", json={"active": False}).status_code == 403

    off = world["admin"].put(f"{path}/technical", json={"active": False})
    assert off.status_code == 200
    assert (off.json()["technical_activation"], off.json()["serves_traffic"]) == (False, False)
    economic = world["manager"].put(f"{path}/economic", json={"active": False}).json()
    assert economic["economic_activation"] is False
    world["owner"].put(f"{path}/technical", json={"active": True})
    half = world["owner"].get(f"/instances/{world.instance_a}").json()
    assert (half["technical_activation"], half["serves_traffic"]) == (True, False)
    both = world["owner"].put(f"{path}/economic", json={"active": True}).json()
    assert both["serves_traffic"] is True

    model = world["manager"].put(
        f"/models/{world.model_a}/activation/economic", json={"active": False}
    )
    assert model.status_code == 200 and model.json()["serves_traffic"] is False
    world["owner"].put(f"/models/{world.model_a}/activation/economic", json={"active": True})
    public = next(m for m in world["owner"].get("/models").json() if m["organization_id"] is None)
    shared = world["owner"].put(
        f"/models/{public['id']}/activation/technical", json={"active": False}
    )
    assert shared.status_code == 403  # one organization cannot switch a shared model off


def test_instances_listing_is_paginated_and_filtered(world: World) -> None:
    page = world["user"].get("/instances", params={"limit": 1, "archived": "false"}).json()
    assert page["total"] >= 1 and len(page["items"]) == 1
    assert page["items"][0]["organization_id"] == str(world.org_a)
    assert world["user"].get("/instances", params={"limit": 0}).status_code == 422
    assert world["user"].get(f"/instances/{uuid.uuid4()}").status_code == 404
