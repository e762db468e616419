"""A model deployed on the `scaleway` provider, end to end, without Scaleway: the real
api and orchestrator drive the fake Scaleway API through the real SDK; when the fake
powers a server on, the real worker agent starts as that VM from the rendered
cloud-init (the mock engine in vLLM's place). The instance walks the lifecycle to
`ready`, answers a chat through the gateway, and once terminated leaves nothing held
at the fake cloud."""

from __future__ import annotations

import httpx
import openai

from tests.lifecycle.conftest import Platform
from tests.support.scaleway_platform import MODEL, Cloud, api_key, deploy
from tests.support.waiting import wait_until


def test_a_scaleway_deployment_serves_chat_and_leaves_nothing_billing(
    scaleway_platform: Platform, scaleway_cloud: Cloud
) -> None:
    platform, cloud = scaleway_platform, scaleway_cloud
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
    # Every step of the create is an action log with its duration, then the create.
    steps = platform.action_logs(action_type="provider.step", instance_id=instance_id)
    assert sorted(s["details"]["step"] for s in steps) == [
        "data_volume",
        "power_on",
        "server",
        "user_data",
    ]
    assert all(isinstance(s["duration_ms"], int) and s["duration_ms"] >= 0 for s in steps)
    (made,) = [s for s in steps if s["details"]["step"] == "server"]
    assert made["details"]["adopted"] is False and made["details"]["server"].startswith("fr-par-2/")
    (create,) = platform.action_logs(action_type="provider.create", instance_id=instance_id)
    assert create["duration_ms"] >= max(s["duration_ms"] for s in steps)

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
