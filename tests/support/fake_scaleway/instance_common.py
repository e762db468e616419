"""What every Instance API route checks the same way: zone, project, types, IPs."""

from __future__ import annotations

from typing import Any

from tests.support.fake_scaleway import errors
from tests.support.fake_scaleway.catalog import ZONES, ServerType, server_types_in
from tests.support.fake_scaleway.cloud import FakeScalewayCloud
from tests.support.fake_scaleway.http_api import Call
from tests.support.fake_scaleway.state import FlexibleIp

ZONE_PREFIX = "/instance/v1/zones/{zone}"


def zone_of(call: Call) -> str:
    zone = call.params["zone"]
    if zone not in ZONES:
        raise errors.invalid_argument("zone", f"unknown zone {zone}", "format")
    return zone


def server_type(zone: str, name: object) -> ServerType:
    if not name:
        raise errors.invalid_argument("commercial_type", "required", "required")
    kind = server_types_in(zone).get(str(name))
    if kind is None:
        raise errors.invalid_argument("commercial_type", f"{name} is not offered in {zone}")
    return kind


def project_for_create(cloud: FakeScalewayCloud, call: Call, body: dict[str, Any]) -> str:
    """The project a new resource goes to: `project` (or `project_id`), else, when only the
    organization is named, the key's default project."""
    account = call.account_or_fail
    project = body.get("project") or body.get("project_id")
    if project is None:
        organization = body.get("organization") or body.get("organization_id")
        if organization is not None and organization != account.organization_id:
            raise errors.permissions_denied("organization", "write")
        project = account.default_project_id
    cloud.check_project(account, str(project))
    return str(project)


def string_list(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise errors.invalid_argument(name, "a list of strings", "format")
    return list(value)


def find_ip(cloud: FakeScalewayCloud, call: Call, ref: str) -> FlexibleIp:
    """A flexible IP of the key's projects in the call's zone, by id or by address."""
    zone, projects = zone_of(call), call.account_or_fail.project_ids
    for ip in cloud.ips.values():
        mine = ip.zone == zone and ip.project in projects and not ip.dynamic
        if mine and ref in (ip.id, ip.address):
            return ip
    raise errors.not_found("instance_ip", ref)
