"""Catalog and model changes leave an audit entry, like every other sensitive change.

A model belongs to an organization, so its entries are in that organization's trail
(`GET /audit_logs`). The catalog is shared by every organization: its entries belong
to none (organization_id NULL): they are read from the table itself and from the
platform trail (`GET /audit_logs/platform`), and must not show up in the trail of the
workspace the platform administrator happened to be in.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg

from tests.api.conftest import World


def _catalog_rows_after(database_url: str, last_id: int) -> list[dict[str, Any]]:
    async def fetch() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                "SELECT * FROM audit_logs WHERE id > $1 AND action LIKE 'catalog.%' ORDER BY id",
                last_id,
            )
        finally:
            await conn.close()
        return [
            {**dict(row), "details": json.loads(row["details"]) if row["details"] else None}
            for row in rows
        ]

    return asyncio.run(fetch())


def _last_audit_id(database_url: str) -> int:
    async def fetch() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM audit_logs"))
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_catalog_changes_are_audited_outside_any_organization(
    world: World, database_url: str
) -> None:
    owner = world["owner"]  # the platform administrator, working in organization A
    last_id = _last_audit_id(database_url)
    # Every change puts back what is already there: the shared catalog stays as it was.
    provider = next(p for p in owner.get("/providers").json() if p["code"] == "mock")
    region = owner.get("/regions").json()[0]
    zone = owner.get("/zones").json()[0]
    mock_type = next(t for t in owner.get("/instance_types").json() if t["code"] == "MOCK-GPU-S")
    offered = [z["id"] for z in owner.get(f"/instance_types/{mock_type['id']}/zones").json()]
    changes = [
        (
            "/providers",
            "catalog.providers_updated",
            "provider",
            {"name": provider["name"]},
            provider,
        ),
        (
            "/regions",
            "catalog.regions_updated",
            "region",
            {"is_active": region["is_active"]},
            region,
        ),
        ("/zones", "catalog.zones_updated", "zone", {"name": zone["name"]}, zone),
        (
            "/instance_types",
            "catalog.instance_types_updated",
            "instance_type",
            {"cost_per_hour_eur": mock_type["cost_per_hour_eur"]},
            mock_type,
        ),
    ]
    for path, _, _, fields, entry in changes:
        response = owner.put(path, json=[{"id": entry["id"], **fields}])
        assert response.status_code == 200, response.text
    zones = owner.put(f"/instance_types/{mock_type['id']}/zones", json={"zone_ids": offered})
    assert zones.status_code == 200, zones.text
    # Refused or failed changes leave nothing behind.
    assert world["admin"].put("/providers", json=[{"id": provider["id"]}]).status_code == 403
    unknown = owner.put("/zones", json=[{"id": str(uuid.uuid4()), "is_active": False}])
    assert unknown.status_code == 404

    rows = _catalog_rows_after(database_url, last_id)
    assert [r["action"] for r in rows] == [
        "catalog.providers_updated",
        "catalog.regions_updated",
        "catalog.zones_updated",
        "catalog.instance_types_updated",
        "catalog.instance_type_zones_updated",
    ]
    for row in rows:
        assert row["organization_id"] is None
        assert row["actor_user_id"] == world.users["owner"]
        assert row["ip_address"] == "127.0.0.1"
    for row, (_, action, resource_type, fields, entry) in zip(rows, changes, strict=False):
        assert row["action"] == action and row["resource_type"] == resource_type
        assert row["details"] == {"changes": [{"id": entry["id"], **fields}]}
    offer = rows[-1]
    assert offer["resource_type"] == "instance_type"
    assert offer["resource_id"] == mock_type["id"]
    assert offer["details"] == {"zone_ids": offered}
    # Not in the trail of the workspace the administrator was working in.
    for _, action, _, _, _ in changes:
        trail = owner.get("/audit_logs", params={"action": action}).json()
        assert trail["total"] == 0, trail
    # They are the platform's trail, which platform administrators read.
    platform = owner.get("/audit_logs/platform", params={"limit": 500})
    assert platform.status_code == 200, platform.text
    assert {r["id"] for r in rows} <= {e["id"] for e in platform.json()["items"]}
    assert all(e["organization_id"] is None for e in platform.json()["items"])
    assert world["admin"].get("/audit_logs/platform").status_code == 403


def test_model_changes_are_in_the_organization_trail(world: World) -> None:
    admin = world["admin"]
    body = {"name": "Audited", "model_id": f"acme/audited-{uuid.uuid4().hex[:6]}"}
    created = admin.post("/models", json=body)
    assert created.status_code == 201, created.text
    mid = created.json()["id"]
    assert admin.put(f"/models/{mid}", json={"name": "Audited 2"}).status_code == 200
    assert admin.delete(f"/models/{mid}").status_code == 204

    page = world["manager"].get("/audit_logs", params={"resource_type": "model", "limit": 500})
    assert page.status_code == 200, page.text
    entries = {e["action"]: e for e in page.json()["items"] if e["resource_id"] == mid}
    assert set(entries) == {"model.created", "model.updated", "model.deleted"}
    for entry in entries.values():
        assert entry["organization_id"] == str(world.org_a)
        assert entry["actor_user_id"] == str(world.users["admin"])
    assert entries["model.created"]["details"] == {"model_id": body["model_id"]}
    assert entries["model.updated"]["details"] == {"fields": ["name"]}
    # Another organization's trail does not show them.
    other = world["other_owner"].get("/audit_logs", params={"resource_type": "model"}).json()
    assert all(e["resource_id"] != mid for e in other["items"])
