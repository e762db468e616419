"""Records as the APIs show them: complete JSON objects in the shapes the SDK unmarshals.

The SDK 2.12 fills a missing field with a default rather than failing (a server without
`state` would read as `running`), so every field it reads is sent, with its real type.
"""

from __future__ import annotations

from typing import Any

from tests.support.fake_scaleway.catalog import LocalImage
from tests.support.fake_scaleway.state import (
    BlockVolume,
    FlexibleIp,
    InstanceVolume,
    Server,
    Store,
)

ALLOWED_ACTIONS = {
    "stopped": ["poweron", "backup"],
    "running": ["poweroff", "terminate", "reboot", "stop_in_place", "backup"],
    "starting": [],
    "stopping": [],
}


def server_json(store: Store, server: Server) -> dict[str, Any]:
    ips = [store.ips[i] for i in _server_ip_ids(server) if i in store.ips]
    public = [_server_ip_json(ip) for ip in ips]
    return {
        "id": server.id,
        "name": server.name,
        "hostname": server.name,
        "organization": server.organization,
        "project": server.project,
        "zone": server.zone,
        "commercial_type": server.commercial_type,
        "arch": "x86_64",
        "tags": list(server.tags),
        "state": server.state,
        "state_detail": server.state_detail,
        "allowed_actions": ALLOWED_ACTIONS.get(server.state, []),
        "creation_date": server.created_at,
        "modification_date": server.modified_at,
        "dynamic_ip_required": server.dynamic_ip_required,
        "routed_ip_enabled": server.routed_ip_enabled,
        "enable_ipv6": False,
        "protected": server.protected,
        "boot_type": server.boot_type,
        "image": _image_json(server.image) if server.image else None,
        "volumes": {
            slot: _server_volume_json(store, server, slot, kind, volume_id)
            for slot, (kind, volume_id) in server.volumes.items()
        },
        "public_ip": public[0] if public else None,
        "public_ips": public,
        "private_ip": None,
        "ipv6": None,
        "mac_address": "de:00:00:" + ":".join(server.id[i : i + 2] for i in (0, 2, 4)),
        # The hypervisor is known once the server has been placed, i.e. powered on.
        "location": (
            {
                "zone_id": server.zone,
                "platform_id": "14",
                "cluster_id": "fake-cluster",
                "hypervisor_id": "fake-hypervisor",
                "node_id": "1",
            }
            if server.state in ("starting", "running", "stopping")
            else None
        ),
        "security_group": {"id": "00000000-0000-4000-8000-000000000001", "name": "default"},
        "placement_group": None,
        "maintenances": [],
        "private_nics": [],
        "filesystems": [],
        "end_of_service": False,
        "admin_password_encryption_ssh_key_id": None,
        "admin_password_encrypted_value": None,
    }


def _server_ip_ids(server: Server) -> list[str]:
    return list(server.flexible_ip_ids) or ([server.dynamic_ip_id] if server.dynamic_ip_id else [])


def _server_ip_json(ip: FlexibleIp) -> dict[str, Any]:
    return {
        "id": ip.id,
        "address": ip.address,
        "gateway": "62.210.0.1",
        "netmask": "32",
        "family": "inet",
        "dynamic": ip.dynamic,
        "provisioning_mode": "dhcp",
        "tags": list(ip.tags),
        "ipam_id": ip.id,
        "state": "attached",
    }


def _image_json(image: LocalImage) -> dict[str, Any]:
    return {
        "id": image.id,
        "name": image.label,
        "arch": "x86_64",
        "creation_date": "2026-01-01T00:00:00+00:00",
        "modification_date": "2026-01-01T00:00:00+00:00",
        "default_bootscript": None,
        "extra_volumes": {},
        "from_server": "",
        "organization": "51b656e3-4865-41e8-adbc-0c45bdd780db",
        "project": "51b656e3-4865-41e8-adbc-0c45bdd780db",
        "public": True,
        "root_volume": {
            "id": image.id,
            "name": image.label,
            "size": image.root_size,
            "volume_type": "sbs_snapshot",
        },
        "state": "available",
        "tags": [],
        "zone": image.zone,
    }


def _server_volume_json(
    store: Store, server: Server, slot: str, kind: str, volume_id: str
) -> dict[str, Any]:
    if kind == "sbs":
        block = store.block_volumes[volume_id]
        name, size, volume_type = block.name, block.size, "sbs_volume"
        created, modified = block.created_at, block.updated_at
    else:
        local = store.instance_volumes[volume_id]
        name, size, volume_type = local.name, local.size, local.volume_type
        created, modified = local.created_at, local.modified_at
    return {
        "id": volume_id,
        "name": name,
        "size": size,
        "volume_type": volume_type,
        "boot": slot == "0",
        "zone": server.zone,
        "state": "available",
        "server": {"id": server.id, "name": server.name},
        "organization": server.organization,
        "project": server.project,
        "export_uri": None,
        "creation_date": created,
        "modification_date": modified,
    }


def ip_json(store: Store, ip: FlexibleIp) -> dict[str, Any]:
    server = store.servers.get(ip.server_id) if ip.server_id else None
    return {
        "id": ip.id,
        "address": ip.address,
        "prefix": f"{ip.address}/32",
        "type": "routed_ipv4",
        "state": "attached" if server else "detached",
        "server": {"id": server.id, "name": server.name} if server else None,
        "reverse": ip.reverse,
        "tags": list(ip.tags),
        "organization": ip.organization,
        "project": ip.project,
        "zone": ip.zone,
        "ipam_id": ip.id,
    }


def instance_volume_json(store: Store, volume: InstanceVolume) -> dict[str, Any]:
    server = store.servers.get(volume.server_id) if volume.server_id else None
    return {
        "id": volume.id,
        "name": volume.name,
        "size": volume.size,
        "volume_type": volume.volume_type,
        "state": "available",
        "tags": list(volume.tags),
        "zone": volume.zone,
        "organization": volume.organization,
        "project": volume.project,
        "export_uri": None,
        "server": {"id": server.id, "name": server.name} if server else None,
        "creation_date": volume.created_at,
        "modification_date": volume.modified_at,
    }


def block_volume_json(volume: BlockVolume) -> dict[str, Any]:
    references = []
    if volume.server_id:
        references.append(
            {
                "id": f"ref-{volume.id}"[:36],
                "product_resource_type": "instance_server",
                "product_resource_id": volume.server_id,
                "type": "exclusive",
                "status": "attached",
                "created_at": volume.attached_at,
            }
        )
    return {
        "id": volume.id,
        "name": volume.name,
        "type": "sbs_15k" if volume.perf_iops >= 15000 else "sbs_5k",
        "size": volume.size,
        "project_id": volume.project,
        "zone": volume.zone,
        "tags": list(volume.tags),
        "status": volume.status,
        "references": references,
        "parent_snapshot_id": None,
        "specs": {"perf_iops": volume.perf_iops, "class": "sbs"},
        "created_at": volume.created_at,
        "updated_at": volume.updated_at,
        "last_detached_at": volume.last_detached_at,
        "kms_key_id": None,
    }
