"""What the platform made and nobody owns is found at Scaleway and deleted: a server
carrying our tags whose instance does not exist (a create whose answer was lost, a row
restored from an old backup) is terminated by the watchdog, and a block volume of ours
left detached is deleted by the storage loop. What is not ours, in the same project,
is left alone. Real api and orchestrator, the fake Scaleway API through the real SDK."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from scaleway.block.v1 import BlockV1API
from scaleway.block.v1.types import CreateVolumeRequestFromEmpty
from scaleway.instance.v1 import VolumeServerTemplate
from scaleway.instance.v1.custom_api import InstanceUtilsV1API
from scaleway.marketplace.v2 import MarketplaceV2API

from tests.lifecycle.conftest import Platform, running_platform
from tests.scaleway.conftest import gpu_image_id, sdk_client
from tests.support.scaleway_platform import GPU_TYPE, ZONE, Cloud
from tests.support.waiting import wait_until

GB = 1_000_000_000


@pytest.fixture
def watched_platform(
    scaleway_cloud: Cloud, agent_wheel: Path, empty_database_url: str, tmp_path: Path
) -> Iterator[Platform]:
    settings = {**scaleway_cloud.settings(agent_wheel), "WATCHDOG_INTERVAL_S": "1"}
    with running_platform(empty_database_url, tmp_path, None, settings) as platform:
        yield platform


def test_servers_and_volumes_of_ours_that_nobody_owns_are_deleted(
    watched_platform: Platform, scaleway_cloud: Cloud
) -> None:
    client = sdk_client(scaleway_cloud.api)
    instance, block = InstanceUtilsV1API(client), BlockV1API(client)
    image = gpu_image_id(MarketplaceV2API(client))
    nobody = str(uuid.uuid4())  # no instance has this id

    def server(name: str, tags: list[str]) -> str:
        made = instance.create_server(
            zone=ZONE,
            commercial_type=GPU_TYPE,
            name=name,
            image=image,
            volumes={"0": VolumeServerTemplate(volume_type="sbs_volume", boot=True, size=125 * GB)},
            tags=tags,
        )
        assert made.server is not None
        server_id: str = made.server.id
        return server_id

    orphan = server(f"inventiv-{nobody}", ["inventiv", f"inventiv-instance={nobody}"])
    foreign = server("someone-elses", ["team-b"])
    ours_detached = block.create_volume(
        zone=ZONE,
        name=f"inventiv-{nobody}-data",
        from_empty=CreateVolumeRequestFromEmpty(size=50 * GB),
        tags=["inventiv", f"inventiv-instance={nobody}", "inventiv-volume=data"],
    ).id
    foreign_volume = block.create_volume(
        zone=ZONE, name="team-b-data", from_empty=CreateVolumeRequestFromEmpty(size=50 * GB)
    ).id

    def held() -> set[str]:
        return {r.id for r in scaleway_cloud.fake.resources() if r.kind != "ip"}

    # The orphan server goes (then its boot volume, detached by its deletion), and the
    # detached volume of ours; the others' server and volume stay.
    wait_until(lambda: orphan not in held(), 90, "the orphan server terminated")
    wait_until(lambda: ours_detached not in held(), 90, "our detached volume deleted")
    wait_until(
        lambda: not [r for r in scaleway_cloud.fake.resources() if r.name.startswith("inventiv-")],
        90,
        "nothing of ours left (the orphan's boot volume included)",
    )
    assert {foreign, foreign_volume} <= held()

    async def logged() -> list[str]:
        conn = await asyncpg.connect(watched_platform.env["DATABASE_URL"])
        try:
            rows = await conn.fetch(
                "SELECT details->>'server' AS server FROM action_logs "
                "WHERE action_type = 'watchdog.orphan_terminated'"
            )
        finally:
            await conn.close()
        return [row["server"] for row in rows]

    # Said once, in the platform's log (no workspace owns an orphan).
    assert asyncio.run(logged()) == [f"{ZONE}/{orphan}"]
