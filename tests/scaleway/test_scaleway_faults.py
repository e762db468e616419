"""Scaleway failing, end to end on the fake Scaleway API with the real api and
orchestrator: a quota refusal fails the instance with the quota in its message; an
orchestrator SIGKILLed after the server was made but before it was powered on leaves
exactly one server, which its successor adopts and brings to ready; a terminate while
Scaleway fails is retried until nothing is held. After each, nothing bills."""

from __future__ import annotations

import signal

from tests.lifecycle.conftest import Platform
from tests.support.scaleway_platform import Cloud, deploy
from tests.support.waiting import wait_until

SERVERS = "/instance/v1/zones/*/servers"


def servers(cloud: Cloud) -> list[str]:
    return [r.id for r in cloud.fake.resources() if r.kind == "server"]


def test_a_quota_refusal_fails_the_instance_and_leaves_nothing(
    scaleway_platform: Platform, scaleway_cloud: Cloud
) -> None:
    platform, cloud = scaleway_platform, scaleway_cloud
    cloud.fake.faults.set_quota("instances_gpus", 0)
    instance_id = deploy(platform)["id"]
    platform.wait_status(instance_id, "failed", timeout=60)
    failed = platform.instance(instance_id)
    assert failed["error_code"] == "provider_create_failed"
    assert "quota" in failed["error_message"] and "of a quota of 0" in failed["error_message"]
    # The attempt's data volume went with it; the terminator closes the instance.
    wait_until(lambda: cloud.fake.resources() == [], 60, "nothing held after a refused create")


def test_an_orchestrator_killed_between_create_and_power_on_leaves_one_server(
    scaleway_platform: Platform, scaleway_cloud: Cloud
) -> None:
    platform, cloud = scaleway_platform, scaleway_cloud
    # Setting the user data fails for a long while: the server is made, never powered on.
    cloud.fake.faults.fail_next(10_000, method="PATCH", path=SERVERS + "/*/user_data/*")
    instance_id = deploy(platform)["id"]
    wait_until(lambda: servers(cloud), 60, "the server is made")
    (server_id,) = servers(cloud)
    assert cloud.fake.servers[server_id].state == "stopped"
    (orchestrator,) = platform.orchestrators
    orchestrator.proc.send_signal(signal.SIGKILL)
    orchestrator.proc.wait(10)
    orchestrator.stop()
    platform.orchestrators.clear()
    assert cloud.fake.servers[server_id].state == "stopped"  # killed before power-on
    cloud.fake.faults.clear_failures()

    platform.start_orchestrator()
    platform.wait_status(instance_id, "ready", timeout=120)
    assert servers(cloud) == [server_id]  # adopted by its tag, never made twice
    blocks = [r for r in cloud.fake.resources() if r.kind == "block_volume"]
    assert len(blocks) == 2  # its boot and data volumes, once each

    platform.admin.delete(f"/instances/{instance_id}")
    platform.wait_status(instance_id, "terminated", timeout=120)
    wait_until(lambda: cloud.fake.resources() == [], 60, "nothing held after terminate")


def test_a_terminate_while_scaleway_fails_is_retried_until_nothing_is_held(
    scaleway_platform: Platform, scaleway_cloud: Cloud
) -> None:
    platform, cloud = scaleway_platform, scaleway_cloud
    instance_id = deploy(platform)["id"]
    platform.wait_status(instance_id, "ready", timeout=120)
    # More failures than one call retries, on the server action and the volume deletes.
    cloud.fake.faults.fail_next(6, method="POST", path=SERVERS + "/*/action")
    cloud.fake.faults.fail_next(6, method="DELETE", path="/block/*/zones/*/volumes/*")
    platform.admin.delete(f"/instances/{instance_id}")
    platform.wait_status(instance_id, "terminated", timeout=180)
    failures = platform.action_logs(action_type="provider.terminate", status="failed")
    assert failures, "the terminate was refused at least once before it went through"
    assert cloud.fake.faults.pending_failures() == 0
    wait_until(lambda: cloud.fake.resources() == [], 60, "nothing held after terminate")
