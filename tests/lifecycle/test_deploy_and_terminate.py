"""A deployment through the API becomes a ready worker serving the model, and goes away
cleanly when deleted, every step in the action log."""

from __future__ import annotations

import httpx
import pytest

from tests.lifecycle.conftest import Platform, runtime_processes
from tests.support.waiting import wait_until


def test_deploy_watch_ready_then_terminate(platform: Platform) -> None:
    created = platform.deploy()
    instance_id = created["id"]
    assert created["status"] == "provisioning" and created["progress_percent"] == 0

    seen = platform.wait_status(instance_id, "ready")
    order = ["provisioning", "booting", "installing", "starting", "ready"]
    assert [s for s in order if s in seen] == seen, seen  # forward only, in order
    ready = platform.instance(instance_id)
    assert ready["progress_percent"] == 100
    steps = [s["step"] for s in ready["progress_steps"]]
    assert steps[0] == "request_accepted" and steps[-1] == "ready"
    assert {"provider_create", "worker_reachable", "agent_registered", "engine_started"} <= set(
        steps
    )
    assert ready["worker_phase"] == "ready" and ready["worker_last_heartbeat"]
    assert ready["provider_instance_id"].startswith("mock-")
    assert ready["worker_version_mismatch"] is False
    processes = runtime_processes(instance_id)
    assert len(processes) == 2  # the agent and its engine

    deleted = platform.admin.delete(f"/instances/{instance_id}")
    assert deleted.status_code == 202 and deleted.json()["terminate_requested_at"]
    platform.wait_status(instance_id, "terminated")
    wait_until(lambda: runtime_processes(instance_id) == [], 60, "the runtime's processes gone")

    logs = platform.admin.get(
        "/action_logs", params={"instance_id": instance_id, "limit": 100}
    ).json()
    kinds = [entry["action_type"] for entry in reversed(logs)]
    assert kinds[0] == "deployment.requested"
    for kind in (
        "provider.create",
        "worker.registered",
        "instance.terminate_requested",
        "provider.terminate",
        "volume.deleted",
    ):
        assert kind in kinds, kinds
    transitions = [
        (e["instance_status_before"], e["instance_status_after"])
        for e in reversed(logs)
        if e["action_type"] == "instance.status_changed"
    ]
    assert transitions[-2:] == [("ready", "terminating"), ("terminating", "terminated")]
    search = platform.admin.get("/action_logs/search", params={"instance_id": instance_id}).json()
    assert search["total"] == len(logs) and search["by_type"]["instance.status_changed"] == len(
        transitions
    )
    types = {t["code"] for t in platform.admin.get("/action_types").json()}
    assert set(kinds) <= types

    archived = platform.admin.put(f"/instances/{instance_id}/archive")
    assert archived.status_code == 200 and archived.json()["is_archived"] is True
    listed = platform.admin.get("/instances", params={"archived": "false"}).json()
    assert instance_id not in [i["id"] for i in listed["items"]]


@pytest.mark.platform_env(
    MOCK_BOOT_DELAY_S="1", MOCK_INSTALL_DELAY_S="1", MOCK_ENGINE_STARTUP_DELAY_S="1"
)
def test_with_mock_delays_every_state_can_be_watched(platform: Platform) -> None:
    """A user polling the API sees each state in turn, with its progress."""
    created = platform.deploy()
    instance_id = created["id"]
    seen = [(created["status"], created["progress_percent"])]

    def ready() -> bool:
        now = platform.instance(instance_id)
        if (now["status"], now["progress_percent"]) != seen[-1]:
            seen.append((now["status"], now["progress_percent"]))
        return bool(now["status"] == "ready")

    # Polled as a user would, often enough to see each one-second stage.
    wait_until(ready, 90, f"{instance_id} ready (seen {seen})", interval=0.1)
    statuses = [status for status, _ in seen]
    assert list(dict.fromkeys(statuses)) == [
        "provisioning",
        "booting",
        "installing",
        "starting",
        "ready",
    ], seen
    progress = [percent for _, percent in seen]
    assert progress == sorted(progress) and progress[0] == 0 and progress[-1] == 100, seen
    # The agent's setup ran on the host before it registered.
    events = [
        line
        for path in platform.home.glob("runtimes/*/worker-events.log")
        for line in path.read_text().splitlines()
    ]
    assert any('"setup_done"' in line for line in events), events[-5:]


def test_bad_deployments_change_nothing(platform: Platform) -> None:
    catalog = platform.catalog()
    before = platform.admin.get("/instances").json()["total"]
    import uuid

    cases = [
        ({k: v for k, v in catalog.items() if k != "model_id"}, 422),
        ({**catalog, "model_id": str(uuid.uuid4())}, 404),
        ({**catalog, "zone_id": str(uuid.uuid4())}, 404),
        ({**catalog, "instance_type_id": str(uuid.uuid4())}, 404),
    ]
    for body, status in cases:
        response = platform.admin.post("/deployments", json=body)
        assert response.status_code == status, (body, response.text)
    # A Scaleway type is not offered in the mock zone.
    import asyncio

    import asyncpg

    async def scaleway_type() -> str:
        conn = await asyncpg.connect(platform.env["DATABASE_URL"])
        value = await conn.fetchval("SELECT id FROM instance_types WHERE code = 'L4-1-24G'")
        await conn.close()
        return str(value)

    not_offered = platform.admin.post(
        "/deployments", json={**catalog, "instance_type_id": asyncio.run(scaleway_type())}
    )
    assert (
        not_offered.status_code == 422 and not_offered.json()["error"]["code"] == "type_not_offered"
    )
    assert platform.admin.get("/instances").json()["total"] == before


def test_a_provider_error_is_retried_then_fails_with_a_reason(platform: Platform) -> None:
    platform.orchestrators.pop().stop()
    platform.start_orchestrator(MOCK_FAIL_CREATES="100", PROVISION_MAX_ATTEMPTS="3")
    instance_id = platform.deploy()["id"]
    platform.wait_status(instance_id, "failed")
    failed = platform.instance(instance_id)
    assert failed["error_code"] == "provider_create_failed"
    assert "after 3 attempt(s)" in failed["error_message"] and "capacity" in failed["error_message"]
    attempts = platform.admin.get(
        "/action_logs", params={"instance_id": instance_id, "action_type": "provider.create_failed"}
    ).json()
    assert len(attempts) == 3
    live = platform.admin.put(f"/instances/{instance_id}/archive")
    assert live.status_code == 200  # failed instances can be archived


def test_archiving_a_live_instance_is_refused(platform: Platform) -> None:
    instance_id = platform.deploy()["id"]
    refused = platform.admin.put(f"/instances/{instance_id}/archive")
    assert refused.status_code == 409
    assert platform.instance(instance_id)["is_archived"] is False
    platform.admin.delete(f"/instances/{instance_id}")
    platform.wait_status(instance_id, "terminated")


def test_worker_endpoints_refuse_bad_credentials(platform: Platform) -> None:
    base = platform.api.base_url
    register = httpx.post(
        f"{base}/internal/worker/register",
        json={"instance_id": "x"},
        headers={"Authorization": "Bearer nope"},
    )
    assert register.status_code == 400
    import uuid

    unknown = httpx.post(
        f"{base}/internal/worker/register",
        json={"instance_id": str(uuid.uuid4())},
        headers={"Authorization": "Bearer nope"},
    )
    assert unknown.status_code == 401
    beat = httpx.post(
        f"{base}/internal/worker/heartbeat", json={}, headers={"Authorization": "Bearer wt_nope"}
    )
    assert beat.status_code == 401
    garbage = httpx.post(
        f"{base}/internal/worker/heartbeat", content=b"[1,2", headers={"Authorization": "Bearer x"}
    )
    assert garbage.status_code == 400
    # The orchestrator answers these itself, ahead of its framework: still JSON errors.
    wrong_method = httpx.get(f"{platform.orchestrators[0].base_url}/internal/worker/heartbeat")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "worker_auth"
    too_big = httpx.post(
        f"{platform.orchestrators[0].base_url}/internal/worker/heartbeat",
        content=b"x" * (300 * 1024),
        headers={"Authorization": "Bearer wt_nope"},
    )
    assert too_big.status_code == 413


def test_live_feed_streams_the_workspace_changes_and_nothing_to_others(
    platform: Platform,
) -> None:
    import json
    import threading

    # Someone in another organization, watching their own workspace's feed.
    outsider = platform.outsider("elsewhere")

    feeds: dict[str, list[dict[str, object]]] = {"admin": [], "outsider": []}
    connected = {name: threading.Event() for name in feeds}
    failures: list[BaseException] = []

    def follow(name: str, client: httpx.Client) -> None:
        """Read the feed until this workspace's instance is ready."""
        with client.stream("GET", "/events/instances", timeout=120) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            kind = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    if kind == "ready":
                        connected[name].set()
                    elif kind == "instance":
                        feeds[name].append(json.loads(line[6:]))
                        if feeds[name][-1]["to"] == "ready":
                            return
        raise AssertionError(f"{name}'s feed ended before its instance was ready")

    def listen(name: str, client: httpx.Client) -> None:
        try:
            follow(name, client)
        except BaseException as exc:  # surfaced by the test, not lost with the thread
            failures.append(exc)

    readers = [
        threading.Thread(target=listen, args=(name, client), daemon=True)
        for name, client in (("admin", platform.admin), ("outsider", outsider))
    ]
    for reader in readers:
        reader.start()
    assert all(event.wait(60) for event in connected.values()), failures
    # One deployment in each workspace, both feeds open the whole time.
    mine = platform.deploy()["id"]
    deployed = outsider.post("/deployments", json=platform.catalog())
    assert deployed.status_code == 202, deployed.text
    theirs = deployed.json()["id"]
    for reader in readers:
        reader.join(120)
    assert [r.name for r in readers if r.is_alive()] == [] and failures == [], failures
    lifecycle = [
        ("provisioning", "booting"),
        ("booting", "installing"),
        ("installing", "starting"),
        ("starting", "ready"),
    ]
    for name, instance_id in (("admin", mine), ("outsider", theirs)):
        # Each feed carried its own workspace's instance, and nothing of the other's.
        assert [e["instance_id"] for e in feeds[name]] == [instance_id] * 4, feeds[name]
        assert [(e["from"], e["to"]) for e in feeds[name]] == lifecycle
        assert feeds[name][-1]["progress"] == 100


def test_agent_checksum_mismatch_is_flagged_or_refused(platform: Platform) -> None:
    platform.orchestrators.pop().stop()
    platform.start_orchestrator(EXPECTED_AGENT_CHECKSUM="0" * 64)
    flagged = platform.deploy()["id"]
    platform.wait_status(flagged, "ready")
    assert platform.instance(flagged)["worker_version_mismatch"] is True
    logs = platform.admin.get(
        "/action_logs", params={"instance_id": flagged, "action_type": "worker.version_mismatch"}
    ).json()
    assert logs and logs[0]["details"]["expected"] == "0" * 64

    platform.orchestrators.pop().stop()
    platform.start_orchestrator(EXPECTED_AGENT_CHECKSUM="0" * 64, REFUSE_AGENT_MISMATCH="1")
    refused = platform.deploy()["id"]
    platform.wait_status(refused, "installing")

    # Its agent keeps trying to register (a second apart at most); each try is refused.
    def refusals() -> list[dict[str, object]]:
        logged = platform.action_logs(instance_id=refused, action_type="worker.version_mismatch")
        return logged if len(logged) >= 3 else []

    refused_three_times = wait_until(refusals, 60, "three registrations refused")
    assert {e["status"] for e in refused_three_times} == {"failed"}
    assert platform.action_logs(instance_id=refused, action_type="worker.registered") == []
    assert platform.instance(refused)["status"] == "installing"  # it never starts
    assert platform.instance(refused)["worker_version_mismatch"] is True
