"""Instance API, servers: create, read, list, update, delete, actions and user data.

Scaleway's rules kept here: a new server is `stopped`; `poweron` goes through `starting`
to `running`, `poweroff` through `stopping` to `stopped`; `terminate` (from `running`)
goes through `stopping` and then the server is gone, its local volumes deleted and its
Block Storage volumes and flexible IPs only detached; a plain DELETE needs a stopped
server and deletes no volume; a server in a transient state refuses actions.
"""

from __future__ import annotations

from typing import Any

from tests.support.fake_scaleway import errors
from tests.support.fake_scaleway.catalog import local_images_in
from tests.support.fake_scaleway.cloud import FakeScalewayCloud
from tests.support.fake_scaleway.faults import QUOTA_BLOCK_VOLUMES, QUOTA_GPUS, QUOTA_SERVERS
from tests.support.fake_scaleway.http_api import Call, Reply, Route, listing, paged
from tests.support.fake_scaleway.instance_common import (
    ZONE_PREFIX,
    find_ip,
    project_for_create,
    server_type,
    string_list,
    zone_of,
)
from tests.support.fake_scaleway.state import (
    BlockVolume,
    FlexibleIp,
    InstanceVolume,
    Server,
    new_id,
    now_iso,
)
from tests.support.fake_scaleway.views import server_json

SERVER = "instance_server"
IMPLEMENTED_ACTIONS = ("poweron", "poweroff", "terminate")


def find_server(cloud: FakeScalewayCloud, call: Call) -> Server:
    server = cloud.servers.get(call.params["server_id"])
    if (
        server is None
        or server.zone != zone_of(call)
        or server.project not in call.account_or_fail.project_ids
    ):
        raise errors.not_found(SERVER, call.params["server_id"])
    return server


def list_servers(cloud: FakeScalewayCloud, call: Call) -> Reply:
    zone = zone_of(call)
    account = call.account_or_fail
    project, organization = call.q("project"), call.q("organization")
    name, commercial_type, state = call.q("name"), call.q("commercial_type"), call.q("state")
    # `tags` and `servers` come comma-joined in one parameter; a server must carry
    # every tag asked for (the SDK's docstring: "with these exact tags").
    tags = [t for t in (call.q("tags") or "").split(",") if t]
    ids = [i for i in (call.q("servers") or "").split(",") if i]
    found = [
        s
        for s in cloud.servers.values()
        if s.zone == zone
        and s.project in account.project_ids
        and (project is None or s.project == project)
        and (organization is None or s.organization == organization)
        and (name is None or name in s.name)
        and (commercial_type is None or s.commercial_type == commercial_type)
        and (state is None or s.state == state)
        and all(t in s.tags for t in tags)
        and (not ids or s.id in ids)
    ]
    ascending = call.q("order") in ("creation_date_asc", "modification_date_asc")
    found.sort(key=lambda s: s.created_at, reverse=not ascending)
    page, total = paged(call, found, "per_page")
    return listing("servers", [server_json(cloud, s) for s in page], total, header=True)


def create_server(cloud: FakeScalewayCloud, call: Call) -> Reply:
    zone = zone_of(call)
    body = call.json()
    kind = server_type(zone, body.get("commercial_type"))
    project = project_for_create(cloud, call, body)
    tags = string_list(body, "tags")
    image = _image(zone, body.get("image"), kind.name)
    templates = body.get("volumes") or {}
    if not isinstance(templates, dict):
        raise errors.invalid_argument("volumes", "an object of volume templates by slot")
    if image is None and "0" not in templates:
        raise errors.invalid_argument("image", "an image or a boot volume is required", "required")
    if cloud.faults.stock_fails_at(zone, kind.name) == "create":
        raise errors.out_of_stock(kind.name)
    new_block = sum(1 for t in templates.values() if isinstance(t, dict) and "id" not in t)
    new_block += 0 if "0" in templates else 1
    cloud.check_quota(QUOTA_SERVERS, project, 1)
    cloud.check_quota(QUOTA_GPUS, project, kind.gpu)
    cloud.check_quota(QUOTA_BLOCK_VOLUMES, project, new_block)
    ip_ids = [i for i in [body.get("public_ip"), *(body.get("public_ips") or [])] if i]
    flexible = [find_ip(cloud, call, str(i)) for i in ip_ids]
    for ip in flexible:
        if ip.server_id:
            raise errors.invalid_argument("public_ip", f"IP {ip.id} is attached to a server")
    server = Server(
        id=new_id(),
        name=str(body.get("name") or "srv"),
        zone=zone,
        project=project,
        organization=call.account_or_fail.organization_id,
        commercial_type=kind.name,
        tags=tags,
        image=image,
        volumes={},
        dynamic_ip_required=bool(body.get("dynamic_ip_required", True)),
        routed_ip_enabled=bool(body.get("routed_ip_enabled", True)),
        protected=bool(body.get("protected", False)),
        boot_type=str(body.get("boot_type") or "local"),
    )
    if "0" not in templates:
        templates = {"0": {"volume_type": "sbs_volume"}, **templates}
    for slot in sorted(templates, key=int):
        server.volumes[slot] = _volume_for(cloud, server, slot, templates[slot], kind.local_volumes)
    for ip in flexible:
        ip.server_id = server.id
        server.flexible_ip_ids.append(ip.id)
    if server.dynamic_ip_required and not flexible:
        dynamic = FlexibleIp(
            new_id(), cloud.public_address, zone, project, server.organization, [], dynamic=True
        )
        dynamic.server_id = server.id
        cloud.ips[dynamic.id] = dynamic
        server.dynamic_ip_id = dynamic.id
    cloud.servers[server.id] = server
    return Reply(201, {"server": server_json(cloud, server)})


def _image(zone: str, ref: object, commercial_type: str) -> Any:
    if ref is None:
        return None
    for image in local_images_in(zone):
        if ref in (image.id, image.label):
            if commercial_type not in image.compatible_commercial_types:
                raise errors.invalid_argument(
                    "image", f"image {image.label} does not run on {commercial_type}"
                )
            return image
    raise errors.not_found("instance_image", str(ref))


def _volume_for(
    cloud: FakeScalewayCloud, server: Server, slot: str, template: object, local_ok: bool
) -> tuple[str, str]:
    if not isinstance(template, dict):
        raise errors.invalid_argument(f"volumes.{slot}", "a volume template object")
    if "id" in template:
        return _attach_existing(cloud, server, slot, str(template["id"]))
    volume_type = template.get("volume_type") or "sbs_volume"
    size = template.get("size")
    if slot == "0" and server.image is not None:
        size = size or server.image.root_size
        if size < server.image.root_size:
            raise errors.invalid_argument(
                "volumes.0.size", f"at least the image's {server.image.root_size} bytes"
            )
    if not isinstance(size, int) or size <= 0:
        raise errors.invalid_argument(f"volumes.{slot}.size", "a size in bytes", "required")
    name = str(template.get("name") or f"{server.name}-vol-{slot}")
    if volume_type == "sbs_volume":
        volume = BlockVolume(
            new_id(), name, size, server.zone, server.project, server.organization, [], 5000
        )
        volume.server_id, volume.attached_at, volume.status = server.id, now_iso(), "in_use"
        cloud.block_volumes[volume.id] = volume
        return ("sbs", volume.id)
    if volume_type in ("l_ssd", "scratch") and local_ok:
        local = InstanceVolume(
            new_id(), name, size, volume_type, server.zone, server.project,
            server.organization, server.id,
        )  # fmt: skip
        cloud.instance_volumes[local.id] = local
        return ("local", local.id)
    raise errors.invalid_argument(
        f"volumes.{slot}.volume_type", f"{volume_type} is not offered on {server.commercial_type}"
    )


def _attach_existing(
    cloud: FakeScalewayCloud, server: Server, slot: str, volume_id: str
) -> tuple[str, str]:
    block = cloud.block_volumes.get(volume_id)
    if block is not None and block.zone == server.zone and block.project == server.project:
        if block.server_id or block.status != "available":
            raise errors.invalid_argument(f"volumes.{slot}.id", f"volume is {block.status}")
        block.server_id, block.attached_at, block.status = server.id, now_iso(), "in_use"
        return ("sbs", block.id)
    local = cloud.instance_volumes.get(volume_id)
    if local is not None and local.zone == server.zone and local.project == server.project:
        if local.server_id:
            raise errors.invalid_argument(f"volumes.{slot}.id", "volume is attached")
        local.server_id = server.id
        return ("local", local.id)
    raise errors.not_found("volume", volume_id)


def get_server(cloud: FakeScalewayCloud, call: Call) -> Reply:
    return Reply(200, {"server": server_json(cloud, find_server(cloud, call))})


def update_server(cloud: FakeScalewayCloud, call: Call) -> Reply:
    server = find_server(cloud, call)
    body = call.json()
    if "name" in body:
        server.name = str(body["name"])
    if "tags" in body:
        server.tags = string_list(body, "tags")
    server.modified_at = now_iso()
    return Reply(200, {"server": server_json(cloud, server)})


def delete_server(cloud: FakeScalewayCloud, call: Call) -> Reply:
    server = find_server(cloud, call)
    if server.transition is not None:
        raise errors.transient_state(SERVER, server.id, server.state)
    if server.state != "stopped":
        raise errors.not_allowed_now("the server must be stopped before it is deleted")
    cloud.delete_server(server, terminated=False)
    return Reply(204)


def server_action(cloud: FakeScalewayCloud, call: Call) -> Reply:
    server = find_server(cloud, call)
    action = str(call.json().get("action") or "poweron")
    if server.transition is not None:
        raise errors.transient_state(SERVER, server.id, server.state)
    if action not in IMPLEMENTED_ACTIONS:
        raise errors.not_allowed_now(f"the fake cloud does not perform {action}")
    if action == "poweron":
        if server.state != "stopped":
            raise errors.not_allowed_now("the server is not stopped")
        if cloud.faults.stock_fails_at(server.zone, server.commercial_type) == "poweron":
            raise errors.out_of_stock(server.commercial_type)
        cloud.begin(server, "starting", "allocating node", "running")
    elif server.state != "running":
        raise errors.not_allowed_now(f"{action} needs a running server")
    elif action == "poweroff":
        cloud.begin(server, "stopping", "stopping", "stopped")
    else:
        cloud.begin(server, "stopping", "terminating", "terminated")
    return Reply(202, {"task": _task(server, action)})


def _task(server: Server, action: str) -> dict[str, Any]:
    return {
        "id": new_id(),
        "description": f"server_{action}",
        "status": "pending",
        "progress": 0,
        "href_from": f"/servers/{server.id}/action",
        "href_result": f"/servers/{server.id}",
        "started_at": now_iso(),
        "terminated_at": None,
        "zone": server.zone,
    }


def list_actions(cloud: FakeScalewayCloud, call: Call) -> Reply:
    server = find_server(cloud, call)
    actions = [] if server.transition else (["poweron"] if server.state == "stopped" else [])
    actions += ["poweroff", "terminate"] if server.state == "running" else []
    return Reply(200, {"actions": actions})


def list_user_data(cloud: FakeScalewayCloud, call: Call) -> Reply:
    return Reply(200, {"user_data": sorted(find_server(cloud, call).user_data)})


def get_user_data(cloud: FakeScalewayCloud, call: Call) -> Reply:
    server, key = find_server(cloud, call), call.params["key"]
    if key not in server.user_data:
        raise errors.not_found("user_data", key)
    return Reply(200, server.user_data[key], {"Content-Type": "text/plain"})


def set_user_data(cloud: FakeScalewayCloud, call: Call) -> Reply:
    server = find_server(cloud, call)
    # The Instance API takes user data as text/plain only (the SDK sets that header).
    if not call.headers.get("content-type", "").startswith("text/plain"):
        raise errors.invalid_argument("content-type", "user data is sent as text/plain")
    server.user_data[call.params["key"]] = call.body
    return Reply(204)


def delete_user_data(cloud: FakeScalewayCloud, call: Call) -> Reply:
    find_server(cloud, call).user_data.pop(call.params["key"], None)
    return Reply(204)


def attach_volume(cloud: FakeScalewayCloud, call: Call) -> Reply:
    """An existing volume into the server's next free slot (Scaleway's attach-volume)."""
    server = find_server(cloud, call)
    volume_id = call.json().get("volume_id")
    if not isinstance(volume_id, str):
        raise errors.invalid_argument("volume_id", "the id of the volume to attach")
    slot = str(max((int(k) for k in server.volumes), default=-1) + 1)
    server.volumes[slot] = _attach_existing(cloud, server, slot, volume_id)
    return Reply(200, {"server": server_json(cloud, server)})


SERVER_PATH = ZONE_PREFIX + "/servers/{server_id}"
ROUTES = [
    Route("GET", ZONE_PREFIX + "/servers", list_servers),
    Route("POST", ZONE_PREFIX + "/servers", create_server),
    Route("GET", SERVER_PATH, get_server),
    Route("PATCH", SERVER_PATH, update_server),
    Route("DELETE", SERVER_PATH, delete_server),
    Route("POST", SERVER_PATH + "/action", server_action),
    Route("POST", SERVER_PATH + "/attach-volume", attach_volume),
    Route("GET", SERVER_PATH + "/action", list_actions),
    Route("GET", SERVER_PATH + "/user_data", list_user_data),
    Route("GET", SERVER_PATH + "/user_data/{key}", get_user_data),
    Route("PATCH", SERVER_PATH + "/user_data/{key}", set_user_data),
    Route("DELETE", SERVER_PATH + "/user_data/{key}", delete_user_data),
]
