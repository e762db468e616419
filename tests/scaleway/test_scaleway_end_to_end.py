"""A model deployed on the `scaleway` provider, end to end, without Scaleway: the real
api and orchestrator drive the fake Scaleway API through the real SDK; when the fake
powers a server on, the real worker agent starts as that VM from the rendered
cloud-init (the mock engine in vLLM's place). The instance walks the lifecycle to
`ready`, answers a chat through the gateway, and once terminated leaves nothing held
at the fake cloud."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openai
import pytest

from inventiv_common import agent_package
from inventiv_common.net import free_port
from tests.lifecycle.conftest import Platform, running_platform
from tests.support.fake_scaleway import DEFAULT_ACCOUNT, FakeScalewayCloud, FakeScalewayServer
from tests.support.scaleway_vm import VmHost
from tests.support.waiting import wait_until

ZONE = "fr-par-2"
GPU_TYPE = "L4-1-24G"
MODEL = "Qwen/Qwen2.5-0.5B-Instruct"


@pytest.fixture(scope="module")
def agent_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The worker agent's wheel, built from this tree as `make dev` builds it."""
    return agent_package.build(tmp_path_factory.mktemp("agent"))


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


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    made = Cloud(tmp_path)
    yield made
    made.close()


@pytest.fixture
def platform(
    cloud: Cloud, agent_wheel: Path, empty_database_url: str, tmp_path: Path
) -> Iterator[Platform]:
    with running_platform(empty_database_url, tmp_path, None, cloud.settings(agent_wheel)) as p:
        yield p


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


def test_a_scaleway_deployment_serves_chat_and_leaves_nothing_billing(
    platform: Platform, cloud: Cloud
) -> None:
    instance_id = deploy(platform)["id"]
    seen = platform.wait_status(instance_id, "ready", timeout=120)
    # The states the Mock walks, from what the provider and the agent report.
    assert [s for s in seen if s != "provisioning"][:1] in (["booting"], ["installing"]), seen
    assert seen[-1] == "ready"
    instance = platform.instance(instance_id)
    assert instance["ip_address"] == "127.0.0.1"  # the VM's public address, once running
    (server,) = [r for r in cloud.fake.resources() if r.kind == "server"]
    assert server.name == f"inventiv-{instance_id}"
    volumes = platform.admin.get(f"/instances/{instance_id}/volumes").json()
    assert sorted(v["name"].rsplit("-", 1)[1] for v in volumes) == ["boot", "data"]

    ai = openai.OpenAI(api_key=api_key(platform), base_url=f"{platform.api.base_url}/v1")
    wait_until(lambda: MODEL in [m.id for m in ai.models.list().data], 30, "the model is routable")
    answer = ai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello from a fake VM"}], max_tokens=5
    )
    assert answer.usage is not None and answer.usage.completion_tokens == 5

    terminated = platform.admin.delete(f"/instances/{instance_id}")
    assert terminated.status_code in (200, 202, 204), terminated.text
    platform.wait_status(instance_id, "terminated", timeout=120)
    # The server went, then its volumes (Scaleway only detaches them): nothing bills.
    wait_until(lambda: cloud.fake.resources() == [], 60, "nothing left at the fake cloud")
    assert cloud.fake.hook_errors == []
    assert httpx.get(f"{platform.api.base_url}/healthz").status_code == 200
