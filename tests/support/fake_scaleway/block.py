"""Block Storage API (`block/v1alpha1` and `block/v1`, same records and shapes).

A volume is `creating` for the cloud's transition time, then `available`, `in_use`
while a server holds it; it can only be deleted when not in use. Unlike the Instance
API, its lists page with `page_size`, say their total only in the body, and match a
volume carrying ANY of the tags asked for (the SDK's docstring).
"""

from __future__ import annotations

import time

from tests.support.fake_scaleway import errors
from tests.support.fake_scaleway.catalog import ZONES
from tests.support.fake_scaleway.cloud import FakeScalewayCloud
from tests.support.fake_scaleway.faults import QUOTA_BLOCK_VOLUMES
from tests.support.fake_scaleway.http_api import Call, Reply, Route, listing, paged
from tests.support.fake_scaleway.instance_common import project_for_create, string_list
from tests.support.fake_scaleway.state import BlockVolume, new_id, now_iso
from tests.support.fake_scaleway.views import block_volume_json

VOLUME = "volume"
PERF_IOPS = (5000, 15000)


def _zone(call: Call) -> str:
    zone = call.params["zone"]
    if zone not in ZONES:
        raise errors.invalid_argument("zone", f"unknown zone {zone}", "format")
    return zone


def _find(cloud: FakeScalewayCloud, call: Call) -> BlockVolume:
    volume = cloud.block_volumes.get(call.params["volume_id"])
    if (
        volume is None
        or volume.zone != _zone(call)
        or volume.project not in call.account_or_fail.project_ids
    ):
        raise errors.not_found(VOLUME, call.params["volume_id"])
    return volume


def list_volumes(cloud: FakeScalewayCloud, call: Call) -> Reply:
    zone, account = _zone(call), call.account_or_fail
    project, organization = call.q("project_id"), call.q("organization_id")
    name, server_id = call.q("name"), call.q("product_resource_id")
    tags, ids = call.q_list("tags"), call.q_list("volume_ids")
    volume_type = call.q("volume_type")
    found = [
        v
        for v in cloud.block_volumes.values()
        if v.zone == zone
        and v.project in account.project_ids
        and (project is None or v.project == project)
        and (organization is None or v.organization == organization)
        and (name is None or name in v.name)
        and (server_id is None or v.server_id == server_id)
        and (not tags or any(t in v.tags for t in tags))
        and (not ids or v.id in ids)
        and (volume_type is None or block_volume_json(v)["type"] == volume_type)
    ]
    descending = call.q("order_by") == "created_at_desc"
    found.sort(key=lambda v: v.created_at, reverse=descending)
    page, total = paged(call, found, "page_size")
    return listing("volumes", [block_volume_json(v) for v in page], total, header=False)


def create_volume(cloud: FakeScalewayCloud, call: Call) -> Reply:
    zone, body = _zone(call), call.json()
    project = project_for_create(cloud, call, body)
    empty = body.get("from_empty")
    if not isinstance(empty, dict):
        raise errors.invalid_argument(
            "from_empty", "the fake cloud makes empty volumes only", "required"
        )
    size = empty.get("size")
    if not isinstance(size, int) or size < 1_000_000_000:
        raise errors.invalid_argument("from_empty.size", "at least 1 GB, in bytes")
    perf_iops = body.get("perf_iops") or 5000
    if perf_iops not in PERF_IOPS:
        raise errors.invalid_argument("perf_iops", f"one of {PERF_IOPS}")
    cloud.check_quota(QUOTA_BLOCK_VOLUMES, project, 1)
    volume = BlockVolume(
        new_id(),
        str(body.get("name") or "vol"),
        size,
        zone,
        project,
        call.account_or_fail.organization_id,
        string_list(body, "tags"),
        int(perf_iops),
        ready_at=time.monotonic() + cloud.transition_s,
    )
    cloud.block_volumes[volume.id] = volume
    return Reply(200, block_volume_json(volume))


def get_volume(cloud: FakeScalewayCloud, call: Call) -> Reply:
    return Reply(200, block_volume_json(_find(cloud, call)))


def update_volume(cloud: FakeScalewayCloud, call: Call) -> Reply:
    volume, body = _find(cloud, call), call.json()
    if body.get("name") is not None:
        volume.name = str(body["name"])
    if body.get("tags") is not None:
        volume.tags = string_list(body, "tags")
    if body.get("size") is not None:
        if not isinstance(body["size"], int) or body["size"] < volume.size:
            raise errors.invalid_argument("size", "a volume only grows")
        volume.size = body["size"]
    volume.updated_at = now_iso()
    return Reply(200, block_volume_json(volume))


def delete_volume(cloud: FakeScalewayCloud, call: Call) -> Reply:
    volume = _find(cloud, call)
    if volume.status == "creating":
        raise errors.transient_state(VOLUME, volume.id, volume.status)
    if volume.server_id:
        raise errors.still_in_use(f"volume {volume.id} is attached to server {volume.server_id}")
    del cloud.block_volumes[volume.id]
    return Reply(204)


def _routes(version: str) -> list[Route]:
    prefix = f"/block/{version}/zones/{{zone}}/volumes"
    return [
        Route("GET", prefix, list_volumes),
        Route("POST", prefix, create_volume),
        Route("GET", prefix + "/{volume_id}", get_volume),
        Route("PATCH", prefix + "/{volume_id}", update_volume),
        Route("DELETE", prefix + "/{volume_id}", delete_volume),
    ]


ROUTES = _routes("v1alpha1") + _routes("v1")
