"""A platform deploying on the fake Scaleway API: the fake cloud with its VMs (the real
worker agent booted from each server's user data), the settings that point the api and
orchestrator at it, and the catalog ids and requests the Scaleway tests share."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg

from inventiv_common.net import free_port
from tests.lifecycle.conftest import Platform
from tests.support.fake_scaleway import DEFAULT_ACCOUNT, FakeScalewayCloud, FakeScalewayServer
from tests.support.scaleway_vm import VmHost

ZONE = "fr-par-2"
GPU_TYPE = "L4-1-24G"
MODEL = "Qwen/Qwen2.5-0.5B-Instruct"


class Cloud:
    def __init__(self, work: Path) -> None:
        self.vms = VmHost(work / "vms", own_ports=False)
        self.fake = FakeScalewayCloud(
            transition_s=0.3, on_running=self.vms.on_running, on_stopped=self.vms.on_stopped
        )
        self.api = FakeScalewayServer(self.fake).start()

    def settings(self, agent_wheel: Path) -> dict[str, str]:
        return {
            "SCALEWAY_API_URL": self.api.url,
            "SCALEWAY_ACCESS_KEY": DEFAULT_ACCOUNT.access_key,
            "SCALEWAY_SECRET_KEY": DEFAULT_ACCOUNT.secret_key,
            "SCALEWAY_PROJECT_ID": DEFAULT_ACCOUNT.default_project_id,
            "SCALEWAY_ZONES": f"{ZONE},pl-waw-2",
            "AGENT_PACKAGE": str(agent_wheel),
            # The VM's ports, on this machine's loopback: chosen free by the test.
            "VM_AGENT_PORT": str(free_port()),
            "VM_ENGINE_PORT": str(free_port()),
        }

    def close(self) -> None:
        self.vms.stop_all()
        self.api.stop()


def scaleway_offer(platform: Platform, zone: str = ZONE) -> dict[str, str]:
    async def query() -> dict[str, str]:
        conn = await asyncpg.connect(platform.env["DATABASE_URL"])
        try:
            row = await conn.fetchrow(
                "SELECT t.id AS type_id, z.id AS zone_id, m.id AS model_id "
                "FROM instance_types t JOIN providers p ON p.id = t.provider_id "
                "JOIN instance_type_zones tz ON tz.instance_type_id = t.id "
                "JOIN zones z ON z.id = tz.zone_id, models m "
                "WHERE p.code = 'scaleway' AND t.code = $1 AND z.code = $2 "
                "AND m.model_id = $3 AND m.organization_id IS NULL",
                GPU_TYPE,
                zone,
                MODEL,
            )
        finally:
            await conn.close()
        assert row is not None, "the seed catalog offers the type in the zone"
        return {
            "instance_type_id": str(row["type_id"]),
            "zone_id": str(row["zone_id"]),
            "model_id": str(row["model_id"]),
        }

    return asyncio.run(query())


def deploy(platform: Platform, zone: str = ZONE) -> dict[str, Any]:
    answer = platform.admin.post("/deployments", json=scaleway_offer(platform, zone))
    assert answer.status_code == 202, answer.text
    created: dict[str, Any] = answer.json()
    return created


def api_key(platform: Platform) -> str:
    made = platform.admin.post("/api_keys", json={"name": "scaleway e2e"})
    assert made.status_code == 201, made.text
    key: str = made.json()["key"]
    return key
