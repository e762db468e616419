"""Out of stock in the chosen zone, end to end on the fake Scaleway API with the real
api and orchestrator: a deployment that allows another zone moves there and reaches
ready, its action log telling the move, with nothing left in the zone it left; with no
zone left, it fails naming every zone found out of stock, and nothing is held.

The catalog says the type is in stock when the deployment is asked for (the fault is
set after the orchestrator's first sync): stock that runs out between two syncs is what
the provider's refusal at create time is there for."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from tests.lifecycle.conftest import Platform
from tests.support.scaleway_platform import GPU_TYPE, ZONE, Cloud, scaleway_offer
from tests.support.waiting import wait_until

OTHER_ZONE = "pl-waw-2"


def query(platform: Platform, sql: str, *args: object) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(platform.env["DATABASE_URL"])
        try:
            return [dict(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return asyncio.run(run())


def first_sync_done(platform: Platform) -> None:
    """The orchestrator syncs the catalog as it starts; what the fake says after that
    reaches the catalog only at the next sync, an hour later."""
    wait_until(
        lambda: query(
            platform,
            "SELECT 1 FROM action_logs WHERE action_type = 'catalog.sync' "
            "AND details->>'provider' = 'scaleway'",
        ),
        60,
        "the orchestrator's first catalog sync",
    )


def zone_id(platform: Platform, code: str) -> str:
    (row,) = query(platform, "SELECT id::text AS id FROM zones WHERE code = $1", code)
    return str(row["id"])


def logs(platform: Platform, instance_id: str) -> list[dict[str, Any]]:
    answer = platform.admin.get("/action_logs", params={"instance_id": instance_id, "limit": "100"})
    assert answer.status_code == 200, answer.text
    return list(reversed(answer.json()))  # oldest first


def test_out_of_stock_in_the_chosen_zone_moves_to_the_next_and_reaches_ready(
    scaleway_platform: Platform, scaleway_cloud: Cloud
) -> None:
    platform, cloud = scaleway_platform, scaleway_cloud
    first_sync_done(platform)
    cloud.fake.faults.out_of_stock(ZONE, GPU_TYPE)
    other = zone_id(platform, OTHER_ZONE)
    asked = platform.admin.post(
        "/deployments", json={**scaleway_offer(platform), "fallback_zone_ids": [other]}
    )
    assert asked.status_code == 202, asked.text
    instance_id = asked.json()["id"]
    assert asked.json()["fallback_zone_ids"] == [other]

    platform.wait_status(instance_id, "ready", timeout=120)
    instance = platform.instance(instance_id)
    assert instance["zone_id"] == other and instance["fallback_zone_ids"] == []
    assert instance["provider_instance_id"].startswith(f"{OTHER_ZONE}/")
    entries = logs(platform, instance_id)
    kinds = [e["action_type"] for e in entries]
    failed = entries[kinds.index("provider.create_failed")]
    assert failed["error_code"] == "out_of_stock" and failed["details"]["zone"] == ZONE
    moved = entries[kinds.index("provider.zone_fallback")]
    assert moved["details"]["from"] == ZONE and moved["details"]["to"] == OTHER_ZONE
    assert moved["details"]["out_of_stock_in"] == [ZONE]
    created = entries[kinds.index("provider.create")]
    assert created["details"]["zone"] == OTHER_ZONE
    # In that order, and created once.
    assert kinds.index("provider.create_failed") < kinds.index("provider.zone_fallback")
    assert kinds.index("provider.zone_fallback") < kinds.index("provider.create")
    assert kinds.count("provider.create") == 1
    # The refused attempt left nothing in the zone it was made in.
    held = cloud.fake.resources()
    assert [r for r in held if r.zone == ZONE] == []
    assert {r.kind for r in held if r.zone == OTHER_ZONE} >= {"server", "block_volume"}

    platform.admin.delete(f"/instances/{instance_id}")
    platform.wait_status(instance_id, "terminated", timeout=120)
    wait_until(lambda: cloud.fake.resources() == [], 60, "nothing held after terminate")
    assert cloud.fake.hook_errors == []


def test_with_no_zone_left_the_deployment_fails_naming_the_zones_tried(
    scaleway_platform: Platform, scaleway_cloud: Cloud
) -> None:
    platform, cloud = scaleway_platform, scaleway_cloud
    first_sync_done(platform)
    cloud.fake.faults.out_of_stock(ZONE, GPU_TYPE)
    # Out of stock at power-on there: the server was made, and must not stay.
    cloud.fake.faults.out_of_stock(OTHER_ZONE, GPU_TYPE, at="poweron")
    asked = platform.admin.post(
        "/deployments",
        json={**scaleway_offer(platform), "fallback_zone_ids": [zone_id(platform, OTHER_ZONE)]},
    )
    assert asked.status_code == 202, asked.text
    instance_id = asked.json()["id"]

    platform.wait_status(instance_id, "failed", timeout=90)
    failed = platform.instance(instance_id)
    assert failed["error_code"] == "provider_create_failed"
    assert f"out of stock in {ZONE}, {OTHER_ZONE}:" in failed["error_message"]
    kinds = [e["action_type"] for e in logs(platform, instance_id)]
    assert kinds.count("provider.create_failed") == 2
    assert kinds.count("provider.zone_fallback") == 1
    assert "provider.create" not in kinds
    wait_until(lambda: cloud.fake.resources() == [], 60, "nothing held after both refusals")
