"""Volumes tracked, discovered, kept or deleted; the catalog as the provider sells it."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from inventiv_common.db.engine import make_engine, make_session_factory
from inventiv_common.providers.base import CatalogType
from inventiv_common.providers.mock import MOCK_CATALOG
from inventiv_orchestrator.loops.catalog import apply_catalog
from tests.lifecycle.conftest import Platform
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_until


def _sql(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(database_url)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.mark.platform_env(WATCHDOG_INTERVAL_S="0.5")
def test_volumes_are_discovered_kept_on_request_and_otherwise_deleted(
    platform: Platform,
) -> None:
    db = platform.env["DATABASE_URL"]
    instance_id = platform.deploy()["id"]
    platform.wait_status(instance_id, "ready")
    [boot] = platform.admin.get(f"/instances/{instance_id}/volumes").json()
    assert boot["is_boot"] and boot["delete_on_terminate"] and boot["status"] == "attached"

    # A volume the provider attached on its own is found and tracked.
    server_id = platform.instance(instance_id)["provider_instance_id"]
    extra = f"vol-{uuid.uuid4().hex[:12]}"
    _sql(
        db,
        "INSERT INTO mock_volumes (id, server_id, name, zone, size_gb) "
        "VALUES ($1, $2, $3, 'local-1', 50)",
        extra,
        server_id,
        f"{instance_id}-data",
    )
    data = wait_until(
        lambda: [
            v
            for v in platform.admin.get(f"/instances/{instance_id}/volumes").json()
            if v["provider_volume_id"] == extra
        ],
        60,
        "the provider's extra volume tracked",
    )[0]
    assert not data["is_boot"] and data["size_gb"] == 50
    discovered = platform.admin.get(
        "/action_logs", params={"instance_id": instance_id, "action_type": "volume.discovered"}
    ).json()
    assert [e["details"]["volume"] for e in discovered] == [extra]

    # Bad requests change nothing.
    url = f"/instances/{instance_id}/volumes/{data['id']}"
    assert platform.admin.put(url, json={"delete_on_terminate": "maybe"}).status_code == 422
    assert platform.admin.put(url, json={"keep": True}).status_code == 422
    missing = f"/instances/{instance_id}/volumes/{uuid.uuid4()}"
    assert platform.admin.put(missing, json={"delete_on_terminate": False}).status_code == 404
    stranger = platform.outsider("volume-stranger")
    assert stranger.put(url, json={"delete_on_terminate": False}).status_code == 404
    assert stranger.get(f"/instances/{instance_id}/volumes").status_code == 404

    kept = platform.admin.put(url, json={"delete_on_terminate": False})
    assert kept.status_code == 200, kept.text
    assert kept.json()["delete_on_terminate"] is False

    assert platform.admin.delete(f"/instances/{instance_id}").status_code == 202
    platform.wait_status(instance_id, "terminated")
    after = {v["provider_volume_id"]: v for v in platform.admin.get(url.rsplit("/", 1)[0]).json()}
    assert after[boot["provider_volume_id"]]["status"] == "deleted"
    assert after[extra]["status"] == "kept" and after[extra]["deleted_at"] is None
    # Too late to change its fate now.
    assert platform.admin.put(url, json={"delete_on_terminate": True}).status_code == 409

    # Storage passes that follow leave the kept volume alone at the provider, and delete
    # a detached volume nobody owns.
    stray = f"vol-{uuid.uuid4().hex[:12]}"
    _sql(
        db,
        "INSERT INTO mock_volumes (id, name, zone, size_gb) VALUES ($1, $2, 'local-1', 20)",
        stray,
        f"{uuid.uuid4()}-boot",
    )
    wait_until(
        lambda: _sql(
            db, "SELECT 1 FROM mock_volumes WHERE id = $1 AND deleted_at IS NOT NULL", stray
        ),
        60,
        "the stray volume deleted",
    )
    live = {r["id"] for r in _sql(db, "SELECT id FROM mock_volumes WHERE deleted_at IS NULL")}
    assert live == {extra}
    orphan_logs = _sql(
        db,
        "SELECT details FROM action_logs WHERE action_type = 'volume.deleted' "
        "AND details->>'volume' = $1",
        stray,
    )
    assert len(orphan_logs) == 1
    kinds = {
        e["action_type"]
        for e in platform.admin.get(
            "/action_logs", params={"instance_id": instance_id, "limit": 100}
        ).json()
    }
    assert {"volume.discovered", "volume.kept", "volume.deleted"} <= kinds


def test_catalog_sync_follows_the_provider_prices_and_offers(platform: Platform) -> None:
    db = platform.env["DATABASE_URL"]
    requested = platform.admin.post("/catalog/sync")
    assert requested.status_code == 202 and requested.json()["published"] is True

    def synced() -> list[dict[str, Any]]:
        return platform.admin.get("/action_logs", params={"action_type": "catalog.sync"}).json()

    [entry] = wait_until(synced, 60, "the sync's outcome in the workspace's action log")
    assert entry["status"] == "success"
    assert entry["details"]["provider"] == "mock" and entry["details"]["prices"] == {}

    # The provider now sells the small type dearer, withdraws the large one from
    # local-1, and lists a type and a zone this catalog does not know.
    changed = [
        CatalogType("MOCK-GPU-S", Decimal("0.120000"), ("local-1", "local-9")),
        CatalogType("MOCK-GPU-XL", Decimal("1.000000"), ("local-1",)),
        CatalogType("MOCK-GPU-L", Decimal("0.500000"), ()),
    ]
    outcome = asyncio.run(_apply(db, changed))
    assert outcome["prices"] == {"MOCK-GPU-S": {"from": "0.100000", "to": "0.120000"}}
    assert outcome["offers_withdrawn"] == ["MOCK-GPU-L@local-1"]
    assert outcome["unknown_types"] == ["MOCK-GPU-XL"]
    assert outcome["unknown_zones"] == ["local-9"]
    types = {t["code"]: t for t in platform.admin.get("/instance_types").json()}
    assert types["MOCK-GPU-S"]["cost_per_hour_eur"] == "0.120000"
    zone_id = platform.mock_offer()["zone_id"]
    offered = {t["code"] for t in platform.admin.get(f"/zones/{zone_id}/instance_types").json()}
    assert offered == {"MOCK-GPU-S"}
    # A withdrawn offer takes no new deployment.
    catalog = platform.catalog()
    before = _sql(db, "SELECT count(*) AS n FROM instances")[0]["n"]
    refused = platform.admin.post(
        "/deployments", json={**catalog, "instance_type_id": types["MOCK-GPU-L"]["id"]}
    )
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "type_not_offered"
    assert _sql(db, "SELECT count(*) AS n FROM instances")[0]["n"] == before

    # Offered again: back as it was; an unchanged catalog changes nothing.
    back = asyncio.run(_apply(db, list(MOCK_CATALOG)))
    assert back["offers_added"] == ["MOCK-GPU-L@local-1"]
    assert asyncio.run(_apply(db, list(MOCK_CATALOG)))["offers_added"] == []
    offered = {t["code"] for t in platform.admin.get(f"/zones/{zone_id}/instance_types").json()}
    assert offered == {"MOCK-GPU-S", "MOCK-GPU-L"}


async def _apply(database_url: str, offered: list[CatalogType]) -> dict[str, Any]:
    engine = make_engine(database_url, pool_size=1)
    try:
        async with make_session_factory(engine)() as session:
            outcome = await apply_catalog(session, "mock", offered)
            await session.commit()
            return outcome
    finally:
        await engine.dispose()


def test_saved_credentials_are_checked_once_by_the_orchestrators(platform: Platform) -> None:
    import httpx
    import redis

    from inventiv_common.bus import Envelope
    from inventiv_common.messages import CMD_CHECK_CREDENTIALS, Channel

    def bus(orchestrator: ServiceProcess) -> dict[str, Any]:
        status = httpx.get(f"{orchestrator.base_url}/admin/status", timeout=10).json()
        return dict(status["bus"])

    platform.start_orchestrator(primary=False)
    for orchestrator in platform.orchestrators:
        wait_until(lambda o=orchestrator: bus(o)["subscribed"], 60, "both orchestrators listening")
    # Messages each replica has taken from the bus, before this test sends any.
    before = {o.port: bus(o)["received"] for o in platform.orchestrators}

    def checks() -> list[dict[str, Any]]:
        return platform.admin.get(
            "/action_logs", params={"action_type": "provider.credentials_checked"}
        ).json()

    saved = platform.admin.put(
        "/provider_settings/scaleway",
        json={
            "values": {
                "access_key": "SCW" + "A" * 17,
                "secret_key": str(uuid.uuid4()),
                "project_id": str(uuid.uuid4()),
            }
        },
    )
    # Scaleway cannot be reached from a test (its address is a closed port): the values
    # are stored unverified, and the orchestrators are asked to check them later.
    assert saved.status_code == 202, saved.text
    assert saved.json()["verification"] == "pending"
    [unknown] = wait_until(checks, 60, "the check's outcome in the workspace's action log")
    # Said so, not pretended: nobody knows yet whether Scaleway takes them.
    assert unknown["status"] == "failed"
    assert unknown["error_code"] == "provider_transient"
    assert unknown["details"] == {
        "provider": "scaleway",
        "command": unknown["details"]["command"],
        "valid": None,
    }

    # A provider that does run answers; two replicas heard the command, one logged it.
    org = platform.admin.get("/auth/me").json()["current_organization_id"]
    command = Envelope(
        type=CMD_CHECK_CREDENTIALS, organization_id=org, payload={"provider": "mock"}
    )
    # Nothing handles the marker's type: a replica only counts it as received.
    marker = Envelope(type="EVT:TEST_MARKER", organization_id=org)
    publisher = redis.Redis.from_url(platform.env["REDIS_URL"])
    for envelope in (command, marker):
        publisher.publish(
            platform.env["REDIS_CHANNEL_PREFIX"] + Channel.orchestrator, envelope.model_dump_json()
        )
    wait_until(lambda: len(checks()) == 2, 60, "the mock provider's check logged")
    # A replica takes one message at a time, to the end of its handling: once each has
    # taken the marker (its third message: the saved settings' command, ours, the
    # marker), each is done with our command.
    wait_until(
        lambda: all(bus(o)["received"] >= before[o.port] + 3 for o in platform.orchestrators),
        60,
        "both replicas past the command",
    )
    entries = [e for e in checks() if e["details"]["command"] == str(command.id)]
    assert len(entries) == 1
    assert entries[0]["status"] == "success" and entries[0]["details"]["valid"] is True
