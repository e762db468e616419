"""The api's /admin/status, and its one bus subscription fanned out to live-feed clients."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from inventiv_api.instances.feed import CLIENT_BACKLOG, InstanceFeed
from inventiv_common.bus import Envelope
from inventiv_common.messages import EVT_INSTANCE_STATUS_CHANGED, Channel
from tests.api.conftest import ADMIN_PASSWORD, LiveApi, start_api
from tests.support.redis_servers import REDIS_URL
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def own_api(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    prefix = f"status-{uuid.uuid4().hex[:8]}:"
    live = start_api(
        database_url, tmp_path_factory.mktemp("api") / "api.log", REDIS_CHANNEL_PREFIX=prefix
    )
    live.prefix = prefix  # type: ignore[attr-defined]
    yield live
    live.process.stop()


def _status(client: httpx.Client) -> dict:
    response = client.get("/admin/status")
    assert response.status_code == 200, response.text
    return response.json()


def test_status_shows_every_loop_and_the_one_subscription(own_api: LiveApi) -> None:
    owner = own_api.login("admin", ADMIN_PASSWORD)

    def subscribed() -> dict | None:
        status = _status(owner)
        return status if status["bus"]["subscribed"] else None

    status = wait_until(subscribed, 60, "the api subscribed to the bus")
    assert status["service"] == "inventiv-api"
    assert status["bus"]["subscribed"] is True
    assert status["bus"]["channels"] == ["instance_events"]
    assert status["bus"]["handled_types"] == [EVT_INSTANCE_STATUS_CHANGED]
    assert status["dependencies"] == {"database": "ok", "redis": "ok"}
    assert {"gateway-routes", "gateway-meter"} <= set(status["loops"])
    for loop in status["loops"].values():
        assert {"interval_s", "passes", "last_error"} <= set(loop)
    assert status["loops"]["gateway-routes"]["passes"] >= 1
    assert status["instance_feed"]["clients"] == 0


def test_many_feed_clients_share_one_subscription_and_see_only_their_workspace(
    own_api: LiveApi,
) -> None:
    owner = own_api.login("admin", ADMIN_PASSWORD)
    org = uuid.UUID(owner.get("/auth/me").json()["current_organization_id"])
    prefix: str = own_api.prefix  # type: ignore[attr-defined]
    received: list[list[dict]] = [[] for _ in range(3)]
    ready = [threading.Event() for _ in received]
    done = [threading.Event() for _ in received]
    failures: list[BaseException] = []

    def listen(i: int) -> None:
        try:
            follow(i)
        except BaseException as exc:  # surfaced by the test, not lost with the thread
            failures.append(exc)

    def follow(i: int) -> None:
        with owner.stream("GET", "/events/instances", timeout=60) as response:
            kind = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "ready":
                    ready[i].set()
                elif line.startswith("data: ") and kind == "instance":
                    received[i].append(json.loads(line[6:]))
                    if received[i][-1]["to"] == "ready":
                        done[i].set()
                        return

    threads = [threading.Thread(target=listen, args=(i,), daemon=True) for i in range(3)]
    for thread in threads:
        thread.start()
    assert all(event.wait(60) for event in ready), failures
    assert _status(owner)["instance_feed"]["clients"] == 3
    r = redis.Redis.from_url(REDIS_URL)
    channel = f"{prefix}{Channel.instances.value}"
    # Three open feeds, one Redis subscription: the api's consumer.
    assert r.pubsub_numsub(channel) == [(channel.encode(), 1)]

    def change(organization: uuid.UUID, to: str) -> str:
        payload = {"instance_id": str(uuid.uuid4()), "from": "starting", "to": to, "progress": 1}
        envelope = Envelope(
            type=EVT_INSTANCE_STATUS_CHANGED, organization_id=organization, payload=payload
        )
        r.publish(channel, envelope.model_dump_json())
        return payload["instance_id"]

    change(uuid.uuid4(), "booting")  # another organization's change
    mine = change(org, "ready")
    assert all(event.wait(60) for event in done), failures
    for thread in threads:
        thread.join(60)
    assert not [t for t in threads if t.is_alive()] and failures == []
    assert [[e["instance_id"] for e in got] for got in received] == [[mine]] * 3
    wait_until(
        lambda: _status(owner)["instance_feed"]["clients"] == 0,
        60,
        "the feed's clients gone once their streams closed",
    )


async def test_a_client_that_falls_behind_is_cut_off_and_the_others_keep_going() -> None:
    feed = InstanceFeed(asyncio.Event())
    org = uuid.uuid4()

    def change() -> Envelope:
        return Envelope(
            type=EVT_INSTANCE_STATUS_CHANGED,
            organization_id=org,
            payload={"instance_id": str(uuid.uuid4()), "from": "a", "to": "b", "progress": 0},
        )

    with feed.subscribe(org) as slow, feed.subscribe(org) as quick:
        for _ in range(CLIENT_BACKLOG + 5):
            await feed.on_instance_changed(change())
            assert quick.queue.get_nowait() is not None
        backlog = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
        # Its backlog, then the end marker; nothing after it was queued.
        assert len(backlog) == CLIENT_BACKLOG + 1
        assert backlog[-1] is None and all(backlog[:-1])
        assert feed.status()["clients"] == 1
        assert feed.status()["dropped_clients"] == 1
    assert feed.status()["clients"] == 0


def test_status_is_for_platform_admins_only(own_api: LiveApi) -> None:
    # The permission matrix covers every role; here, the anonymous caller.
    assert own_api.client().get("/admin/status").status_code == 401
