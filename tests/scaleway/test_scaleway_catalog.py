"""The catalog as Scaleway sells it: the sync reads the fake Scaleway API through the
real SDK into a seeded catalog (prices, sizes, stock per zone, types new at Scaleway
added switched off); the api shows the stock per zone, refuses a type in shortage with
a 409 and a type not switched on as before, and checks the zones a deployment may fall
back to."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from inventiv_common.db.engine import make_engine, make_session_factory
from inventiv_common.providers.scaleway.provider import ScalewayConfig, ScalewayProvider
from inventiv_orchestrator.loops.catalog import CHANGES, apply_catalog
from tests.lifecycle.conftest import Platform
from tests.support.databases import create_migrated_database, drop_database
from tests.support.fake_scaleway import DEFAULT_ACCOUNT, FakeScalewayCloud, FakeScalewayServer
from tests.support.scaleway_platform import MODEL, Cloud
from tests.support.waiting import wait_until

GPU_ZONES = ("fr-par-2", "pl-waw-2")
# What the fake sells that the seed catalog lacks (its families' larger sizes).
NEW_TYPES = [
    "H100-SXM-2-80G",
    "H100-SXM-4-80G",
    "H100-SXM-8-80G",
    "L4-8-24G",
    "L40S-4-48G",
    "L40S-8-48G",
]


@pytest.fixture
async def seeded_url() -> AsyncIterator[str]:
    """A catalog of the test's own: the sync rewrites it."""
    url = await create_migrated_database()
    yield url
    await drop_database(url)


@pytest.fixture
def fake() -> Iterator[tuple[FakeScalewayCloud, FakeScalewayServer]]:
    cloud = FakeScalewayCloud(transition_s=0.05)
    api = FakeScalewayServer(cloud).start()
    yield cloud, api
    api.stop()


async def sync(url: str, provider: ScalewayProvider) -> dict[str, Any]:
    """One catalog sync as the orchestrator's loop makes it, committed."""
    offered = await provider.sync_catalog()
    engine = make_engine(url, pool_size=1)
    try:
        async with make_session_factory(engine)() as session:
            outcome = await apply_catalog(session, "scaleway", offered)
            await session.commit()
            return outcome
    finally:
        await engine.dispose()


async def rows(url: str, query: str, *args: object) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(url)
    try:
        return [dict(r) for r in await conn.fetch(query, *args)]
    finally:
        await conn.close()


STOCK = (
    "SELECT t.code || '@' || z.code AS offer, tz.availability, tz.is_available "
    "FROM instance_type_zones tz JOIN instance_types t ON t.id = tz.instance_type_id "
    "JOIN zones z ON z.id = tz.zone_id JOIN providers p ON p.id = t.provider_id "
    "WHERE p.code = 'scaleway'"
)


async def test_the_sync_follows_scaleway_prices_sizes_stock_and_new_types(
    seeded_url: str, fake: tuple[FakeScalewayCloud, FakeScalewayServer]
) -> None:
    cloud, api = fake
    provider = ScalewayProvider(
        ScalewayConfig(
            access_key=DEFAULT_ACCOUNT.access_key,
            secret_key=DEFAULT_ACCOUNT.secret_key,
            project_id=DEFAULT_ACCOUNT.default_project_id,
            zones=GPU_ZONES,
            api_url=api.url,
        ),
        lambda _spec: b"",
    )
    cloud.faults.set_availability("pl-waw-2", "L4-1-24G", "scarce")
    cloud.faults.out_of_stock("fr-par-2", "H100-1-80G")
    # A size in our catalog that Scaleway says otherwise.
    await rows(seeded_url, "UPDATE instance_types SET vcpu_count = 4 WHERE code = 'L4-1-24G'")

    outcome = await sync(seeded_url, provider)
    # The seed's H100 prices are not the fake's (2.75 EUR an hour a GPU).
    assert outcome["prices"] == {
        "H100-1-80G": {"from": "2.730000", "to": "2.75"},
        "H100-2-80G": {"from": "5.460000", "to": "5.5"},
    }
    assert outcome["sizes"] == {"L4-1-24G": {"vcpu_count": {"from": 4, "to": 8}}}
    assert sorted(outcome["types_added"]) == NEW_TYPES
    assert outcome["availability"] == {
        "L4-1-24G@pl-waw-2": {"from": "available", "to": "scarce"},
        "H100-1-80G@fr-par-2": {"from": "available", "to": "shortage"},
    }
    assert outcome["offers_withdrawn"] == [] and outcome["unknown_types"] == []
    # Offers Scaleway makes that the seed did not list, new types' included.
    assert {"L4-4-24G@pl-waw-2", "L40S-1-48G@pl-waw-2", "L4-8-24G@fr-par-2"} <= set(
        outcome["offers_added"]
    )

    types = {
        r["code"]: r
        for r in await rows(
            seeded_url,
            "SELECT code, name, is_active, cost_per_hour_eur, gpu_count, gpu_memory_gb, "
            "vcpu_count, ram_gb FROM instance_types",
        )
    }
    assert types["H100-1-80G"]["cost_per_hour_eur"] == Decimal("2.75")
    assert types["L4-1-24G"]["vcpu_count"] == 8
    added = types["L4-8-24G"]
    assert added["is_active"] is False  # for an operator to look at and switch on
    assert (added["gpu_count"], added["gpu_memory_gb"]) == (8, 24)
    assert (added["vcpu_count"], added["ram_gb"]) == (64, 384)
    assert added["cost_per_hour_eur"] == Decimal("6.0")
    assert added["name"] == "L4-8-24G (8 GPU x 24 GB)"
    stock = {r["offer"]: r for r in await rows(seeded_url, STOCK)}
    # In shortage, the offer stays (the type is sold there) with its stock said.
    assert stock["H100-1-80G@fr-par-2"]["availability"] == "shortage"
    assert stock["H100-1-80G@fr-par-2"]["is_available"] is True
    assert stock["L4-1-24G@pl-waw-2"]["availability"] == "scarce"
    assert stock["L4-1-24G@fr-par-2"]["availability"] == "available"
    assert {
        stock[f"{code}@{zone}"]["availability"] for code in NEW_TYPES for zone in GPU_ZONES
    } == {"available"}

    # An operator switches a new type on: the sync leaves that to operators. Unchanged,
    # Scaleway's catalog changes nothing more.
    await rows(seeded_url, "UPDATE instance_types SET is_active = true WHERE code = 'L4-8-24G'")
    again = await sync(seeded_url, provider)
    assert {key: again[key] for key in CHANGES} == {
        key: {} if isinstance(outcome[key], dict) else [] for key in CHANGES
    }
    (active,) = await rows(
        seeded_url, "SELECT is_active FROM instance_types WHERE code = 'L4-8-24G'"
    )
    assert active["is_active"] is True

    # Restocked: the type takes deployments there again.
    cloud.faults.restock("fr-par-2", "H100-1-80G")
    back = await sync(seeded_url, provider)
    assert back["availability"] == {"H100-1-80G@fr-par-2": {"from": "shortage", "to": "available"}}


def catalog_ids(platform: Platform) -> dict[str, str]:
    """type code, zone code and the model: their ids."""

    async def query() -> dict[str, str]:
        found = await rows(
            platform.env["DATABASE_URL"],
            "SELECT code, id::text AS id FROM instance_types UNION ALL "
            "SELECT code, id::text FROM zones UNION ALL "
            "SELECT model_id, id::text FROM models WHERE organization_id IS NULL",
        )
        return {r["code"]: r["id"] for r in found}

    return asyncio.run(query())


def test_stock_per_zone_is_shown_and_a_type_in_shortage_takes_no_deployment(
    scaleway_platform: Platform, scaleway_cloud: Cloud
) -> None:
    platform, cloud = scaleway_platform, scaleway_cloud
    cloud.fake.faults.set_availability("fr-par-2", "L4-1-24G", "shortage")
    cloud.fake.faults.set_availability("pl-waw-2", "L4-1-24G", "scarce")
    requested = platform.admin.post("/catalog/sync")
    assert requested.status_code == 202, requested.text

    def l4() -> dict[str, Any]:
        types = {t["code"]: t for t in platform.admin.get("/instance_types").json()}
        return types["L4-1-24G"]

    wait_until(
        lambda: l4()["availability"] == {"fr-par-2": "shortage", "pl-waw-2": "scarce"},
        60,
        "the stock Scaleway reports, per zone",
    )

    def logged() -> list[dict[str, Any]]:
        entries = platform.admin.get("/action_logs", params={"action_type": "catalog.sync"})
        return [e for e in entries.json() if e["details"]["provider"] == "scaleway"]

    [entry] = wait_until(logged, 60, "the requested sync's outcome in the action log")
    assert entry["status"] == "success", entry
    ids = catalog_ids(platform)
    zones = platform.admin.get(f"/instance_types/{ids['L4-1-24G']}/zones").json()
    assert {z["code"]: (z["availability"], z["is_available"]) for z in zones} == {
        "fr-par-2": ("shortage", True),
        "pl-waw-2": ("scarce", True),
    }

    def deploying(type_code: str, zone: str, **more: object) -> Any:
        body = {
            "instance_type_id": ids[type_code],
            "zone_id": ids[zone],
            "model_id": ids[MODEL],
            **more,
        }
        return platform.admin.post("/deployments", json=body)

    refused = deploying("L4-1-24G", "fr-par-2")
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "type_out_of_stock"
    assert "L4-1-24G" in error["message"] and "fr-par-2" in error["message"]
    assert error["details"] == {"zone": "fr-par-2", "available_in": ["pl-waw-2"]}

    # A type Scaleway sells that no operator has switched on yet: refused as before.
    new = {t["code"]: t for t in platform.admin.get("/instance_types").json()}["L4-8-24G"]
    assert new["is_active"] is False and new["availability"] == {
        "fr-par-2": "available",
        "pl-waw-2": "available",
    }
    inactive = deploying("L4-8-24G", "fr-par-2")
    assert inactive.status_code == 422 and inactive.json()["error"]["code"] == "not_available"

    # Zones to fall back to must offer the type, once each, and not be the zone itself.
    for fallback, code in (
        ([ids["fr-par-1"]], "fallback_zone_not_offered"),
        ([ids["fr-par-2"]], "invalid_fallback_zones"),
        ([ids["fr-par-2"]] * 2, "invalid_fallback_zones"),
    ):
        bad = deploying("L4-2-24G", "fr-par-2", fallback_zone_ids=fallback)
        assert bad.status_code == 422 and bad.json()["error"]["code"] == code, bad.text
    both = deploying(
        "L4-2-24G", "fr-par-2", fallback_zone_ids=[ids["pl-waw-2"]], any_zone_in_region=True
    )
    assert both.status_code == 422 and both.json()["error"]["code"] == "validation_error"
    assert platform.admin.get("/instances").json()["total"] == 0
