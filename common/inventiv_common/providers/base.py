"""The interface every provider implements, and the values it trades in.

Rules every implementation keeps: `create` is idempotent (our instance id is the
server's name, so a retried create finds the server it already made); `terminate` of
a server that is already gone succeeds; nothing here touches the `instances` table,
which only the orchestrator's lifecycle code changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

# ProviderError.code of a provider with no capacity of the type in the zone: final for
# that zone, so a deployment allowed other zones moves to the next one.
OUT_OF_STOCK = "out_of_stock"


class ProviderError(Exception):
    """A provider call failed. `retryable` says whether trying again may help."""

    def __init__(
        self, message: str, *, retryable: bool = True, code: str = "provider_error"
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code


@dataclass(frozen=True)
class ServerSpec:
    """What to create: one server running the worker agent beside an engine."""

    name: str  # our instance id
    zone: str
    instance_type: str
    model: str  # the id the engine serves (e.g. a Hugging Face repo id)
    control_plane_url: str
    bootstrap_secret: str
    engine_key: str
    heartbeat_interval_s: float = 10.0
    # Sizes where the provider makes real disks (0: the provider's default): the boot
    # volume for the type, the data volume for the model's cache.
    boot_volume_gb: int = 0
    data_volume_gb: int = 0
    # How a real engine (vLLM) runs the model: across the type's GPUs, up to the model's
    # context, with the model's own engine settings, and a Hugging Face token when the
    # model is gated (a secret: it travels only where the engine key does).
    gpu_count: int = 1
    max_model_len: int = 8192
    engine_args: dict[str, object] = field(default_factory=dict)
    hf_token: str | None = None


@dataclass(frozen=True)
class ProviderVolume:
    provider_id: str
    name: str
    zone: str
    size_gb: int
    server_id: str | None
    volume_type: str = "b_ssd"


@dataclass(frozen=True)
class ProviderServer:
    provider_id: str
    name: str
    status: str  # starting | running | stopped | deleted
    zone: str
    ip_address: str | None = None
    health_port: int | None = None
    engine_port: int | None = None
    details: dict[str, object] = field(default_factory=dict)
    # Volumes made with the server, when the provider's answer includes them.
    volumes: tuple[ProviderVolume, ...] = ()

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass(frozen=True)
class CatalogType:
    code: str
    hourly_price_eur: Decimal
    zones: tuple[str, ...]  # where it can be deployed now
    # What the provider says of it, where it says it (0: not said).
    gpu_count: int = 0
    gpu_memory_gb: int = 0
    vcpus: int = 0
    ram_gb: int = 0
    # zone -> available | scarce | shortage, for the zones the provider reports on.
    availability: dict[str, str] = field(default_factory=dict)


class CloudProvider(Protocol):
    code: str

    async def create(self, spec: ServerSpec) -> ProviderServer: ...

    async def get(self, provider_id: str) -> ProviderServer | None: ...

    async def find_by_name(self, name: str) -> ProviderServer | None: ...

    async def terminate(self, provider_id: str) -> None: ...

    async def get_many(self, provider_ids: Sequence[str]) -> list[ProviderServer]:
        """Those of these servers the provider has (deleted ones included, as `get`
        gives them): what a health pass asks, in one call instead of one per server."""
        ...

    async def list_servers(self) -> list[ProviderServer]: ...

    async def list_volumes(self, server_id: str | None = None) -> list[ProviderVolume]:
        """Every volume, or only those attached to `server_id`."""
        ...

    async def delete_volume(self, provider_id: str) -> None: ...

    async def sync_catalog(self) -> list[CatalogType]: ...

    async def check_credentials(self) -> bool: ...
