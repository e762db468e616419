"""Instance API besides servers: flexible IPs, local volumes, server types, availability."""

from __future__ import annotations

from tests.support.fake_scaleway import errors
from tests.support.fake_scaleway.catalog import server_types_in
from tests.support.fake_scaleway.cloud import FakeScalewayCloud
from tests.support.fake_scaleway.faults import QUOTA_FLEXIBLE_IPS
from tests.support.fake_scaleway.http_api import Call, Reply, Route, listing, paged
from tests.support.fake_scaleway.instance_common import (
    ZONE_PREFIX,
    find_ip,
    project_for_create,
    string_list,
    zone_of,
)
from tests.support.fake_scaleway.state import FlexibleIp, InstanceVolume, new_id
from tests.support.fake_scaleway.views import instance_volume_json, ip_json


# --- flexible IPs ----------------------------------------------------------------
def list_ips(cloud: FakeScalewayCloud, call: Call) -> Reply:
    zone, account = zone_of(call), call.account_or_fail
    project, name = call.q("project"), call.q("name")
    tags = [t for t in (call.q("tags") or "").split(",") if t]
    found = [
        ip
        for ip in cloud.ips.values()
        if ip.zone == zone
        and not ip.dynamic
        and ip.project in account.project_ids
        and (project is None or ip.project == project)
        and (name is None or name in ip.address)
        and all(t in ip.tags for t in tags)
    ]
    page, total = paged(call, found, "per_page")
    return listing("ips", [ip_json(cloud, ip) for ip in page], total, header=True)


def create_ip(cloud: FakeScalewayCloud, call: Call) -> Reply:
    zone, body = zone_of(call), call.json()
    project = project_for_create(cloud, call, body)
    if body.get("type", "routed_ipv4") != "routed_ipv4":
        raise errors.invalid_argument("type", "the fake cloud reserves routed_ipv4 only")
    cloud.check_quota(QUOTA_FLEXIBLE_IPS, project, 1)
    ip = FlexibleIp(
        new_id(),
        cloud.next_flexible_address(),
        zone,
        project,
        call.account_or_fail.organization_id,
        string_list(body, "tags"),
    )
    cloud.ips[ip.id] = ip
    if body.get("server"):
        _attach(cloud, call, ip, str(body["server"]))
    return Reply(201, {"ip": ip_json(cloud, ip)})


def get_ip(cloud: FakeScalewayCloud, call: Call) -> Reply:
    return Reply(200, {"ip": ip_json(cloud, find_ip(cloud, call, call.params["ip"]))})


def update_ip(cloud: FakeScalewayCloud, call: Call) -> Reply:
    ip, body = find_ip(cloud, call, call.params["ip"]), call.json()
    if "tags" in body:
        ip.tags = string_list(body, "tags")
    if "reverse" in body:
        ip.reverse = body["reverse"]
    if "server" in body:
        # The SDK drops `server=None`, so it cannot detach this way: it deletes the IP
        # or attaches it elsewhere. A raw `null` detaches, as the API documents.
        _detach(cloud, ip)
        if body["server"]:
            _attach(cloud, call, ip, str(body["server"]))
    return Reply(200, {"ip": ip_json(cloud, ip)})


def delete_ip(cloud: FakeScalewayCloud, call: Call) -> Reply:
    ip = find_ip(cloud, call, call.params["ip"])
    _detach(cloud, ip)
    del cloud.ips[ip.id]
    return Reply(204)


def _attach(cloud: FakeScalewayCloud, call: Call, ip: FlexibleIp, server_id: str) -> None:
    server = cloud.servers.get(server_id)
    if server is None or server.zone != ip.zone or server.project != ip.project:
        raise errors.not_found("instance_server", server_id)
    ip.server_id = server.id
    server.flexible_ip_ids.append(ip.id)
    # A server that gets a flexible IP gives its dynamic one back.
    if server.dynamic_ip_id:
        cloud.ips.pop(server.dynamic_ip_id, None)
        server.dynamic_ip_id = None


def _detach(cloud: FakeScalewayCloud, ip: FlexibleIp) -> None:
    server = cloud.servers.get(ip.server_id) if ip.server_id else None
    ip.server_id = None
    if server is not None:
        server.flexible_ip_ids.remove(ip.id)


# --- local volumes ---------------------------------------------------------------
def list_volumes(cloud: FakeScalewayCloud, call: Call) -> Reply:
    zone, account = zone_of(call), call.account_or_fail
    project, name, volume_type = call.q("project"), call.q("name"), call.q("volume_type")
    tags = [t for t in (call.q("tags") or "").split(",") if t]
    found = [
        v
        for v in cloud.instance_volumes.values()
        if v.zone == zone
        and v.project in account.project_ids
        and (project is None or v.project == project)
        and (name is None or name in v.name)
        and (volume_type is None or v.volume_type == volume_type)
        and all(t in v.tags for t in tags)
    ]
    page, total = paged(call, found, "per_page")
    return listing("volumes", [instance_volume_json(cloud, v) for v in page], total, header=True)


def _find_volume(cloud: FakeScalewayCloud, call: Call) -> InstanceVolume:
    volume = cloud.instance_volumes.get(call.params["volume_id"])
    if (
        volume is None
        or volume.zone != zone_of(call)
        or volume.project not in call.account_or_fail.project_ids
    ):
        raise errors.not_found("instance_volume", call.params["volume_id"])
    return volume


def get_volume(cloud: FakeScalewayCloud, call: Call) -> Reply:
    return Reply(200, {"volume": instance_volume_json(cloud, _find_volume(cloud, call))})


def delete_volume(cloud: FakeScalewayCloud, call: Call) -> Reply:
    volume = _find_volume(cloud, call)
    if volume.server_id:
        raise errors.not_allowed_now("a volume attached to a server cannot be deleted")
    del cloud.instance_volumes[volume.id]
    return Reply(204)


# --- products --------------------------------------------------------------------
def list_server_types(cloud: FakeScalewayCloud, call: Call) -> Reply:
    types = sorted(server_types_in(zone_of(call)).items())
    page, total = paged(call, types, "per_page")
    return listing("servers", {name: t.as_json() for name, t in page}, total, header=True)


def server_types_availability(cloud: FakeScalewayCloud, call: Call) -> Reply:
    zone = zone_of(call)
    names = sorted(server_types_in(zone))
    page, total = paged(call, names, "per_page")
    levels = {n: {"availability": cloud.faults.availability(zone, n)} for n in page}
    return listing("servers", levels, total, header=True)


IP_PATH = ZONE_PREFIX + "/ips/{ip}"
VOLUME_PATH = ZONE_PREFIX + "/volumes/{volume_id}"
ROUTES = [
    Route("GET", ZONE_PREFIX + "/ips", list_ips),
    Route("POST", ZONE_PREFIX + "/ips", create_ip),
    Route("GET", IP_PATH, get_ip),
    Route("PATCH", IP_PATH, update_ip),
    Route("DELETE", IP_PATH, delete_ip),
    Route("GET", ZONE_PREFIX + "/volumes", list_volumes),
    Route("GET", VOLUME_PATH, get_volume),
    Route("DELETE", VOLUME_PATH, delete_volume),
    Route("GET", ZONE_PREFIX + "/products/servers", list_server_types),
    Route("GET", ZONE_PREFIX + "/products/servers/availability", server_types_availability),
]
