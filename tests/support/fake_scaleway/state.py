"""The fake cloud's records, one class per kind of resource Scaleway bills or holds."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tests.support.fake_scaleway.catalog import LocalImage


def new_id() -> str:
    return str(uuid.uuid4())


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class Account:
    """An API key: the SDK sends the secret key as X-Auth-Token."""

    access_key: str
    secret_key: str
    organization_id: str
    project_ids: tuple[str, ...]
    # A key limited to reading: every write answers permissions_denied.
    read_only: bool = False

    @property
    def default_project_id(self) -> str:
        return self.project_ids[0]


@dataclass
class Transition:
    """Where a server in a transient state is going, and when it gets there."""

    target: str  # running | stopped | terminated
    due: float  # time.monotonic()


@dataclass
class Server:
    id: str
    name: str
    zone: str
    project: str
    organization: str
    commercial_type: str
    tags: list[str]
    image: LocalImage | None
    # Volume slot ("0" is the boot volume) -> ("sbs", block volume id) or ("local", id).
    volumes: dict[str, tuple[str, str]]
    dynamic_ip_required: bool
    routed_ip_enabled: bool
    protected: bool
    boot_type: str
    state: str = "stopped"
    state_detail: str = ""
    dynamic_ip_id: str | None = None
    flexible_ip_ids: list[str] = field(default_factory=list)
    user_data: dict[str, bytes] = field(default_factory=dict)
    transition: Transition | None = None
    created_at: str = field(default_factory=now_iso)
    modified_at: str = field(default_factory=now_iso)


@dataclass
class InstanceVolume:
    """A volume local to the hypervisor (`l_ssd`, `scratch`): the Instance API's own."""

    id: str
    name: str
    size: int
    volume_type: str
    zone: str
    project: str
    organization: str
    server_id: str | None
    tags: list[str] = field(default_factory=list)
    created_at: str = field(default_factory=now_iso)
    modified_at: str = field(default_factory=now_iso)


@dataclass
class BlockVolume:
    """A Block Storage (`sbs_volume`) volume: survives its server unless deleted."""

    id: str
    name: str
    size: int
    zone: str
    project: str
    organization: str
    tags: list[str]
    perf_iops: int
    server_id: str | None = None
    attached_at: str | None = None
    ready_at: float = 0.0  # time.monotonic(): `creating` until then
    status: str = "creating"
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    last_detached_at: str | None = None


@dataclass
class FlexibleIp:
    id: str
    address: str
    zone: str
    project: str
    organization: str
    tags: list[str]
    # A dynamic IP is made with its server and released with it; a flexible one is
    # reserved on its own and stays (and bills) until deleted.
    dynamic: bool = False
    server_id: str | None = None
    reverse: str | None = None
    created_at: str = field(default_factory=now_iso)


@dataclass(frozen=True)
class Resource:
    """One thing the fake cloud holds, as `FakeScalewayCloud.resources()` lists it."""

    kind: str  # server | instance_volume | block_volume | ip
    zone: str
    id: str
    name: str
    project: str


class Store:
    """Every record, under one lock: a request sees and changes a consistent cloud."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.servers: dict[str, Server] = {}
        self.instance_volumes: dict[str, InstanceVolume] = {}
        self.block_volumes: dict[str, BlockVolume] = {}
        self.ips: dict[str, FlexibleIp] = {}

    def resources(self) -> list[Resource]:
        """Everything held, in every zone and project: what would still bill."""
        with self.lock:
            held = [
                Resource("server", s.zone, s.id, s.name, s.project) for s in self.servers.values()
            ]
            held += [
                Resource("instance_volume", v.zone, v.id, v.name, v.project)
                for v in self.instance_volumes.values()
            ]
            held += [
                Resource("block_volume", v.zone, v.id, v.name, v.project)
                for v in self.block_volumes.values()
            ]
            held += [
                Resource("ip", ip.zone, ip.id, ip.address, ip.project) for ip in self.ips.values()
            ]
            return held
