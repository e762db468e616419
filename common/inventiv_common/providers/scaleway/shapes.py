"""What the Scaleway provider trades in: its configuration, our tags and ids, the steps
of a create, and Scaleway's objects turned into the provider interface's values."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from scaleway.block.v1.types import Volume as BlockVolume
from scaleway.instance.v1 import Server

from inventiv_common.providers.base import (
    ProviderError,
    ProviderServer,
    ProviderVolume,
    ServerSpec,
)
from inventiv_common.providers.scaleway.errors import INVALID_ARGUMENT

DEFAULT_API_URL = "https://api.scaleway.com"
OURS = "inventiv"
GB = 1_000_000_000  # Scaleway sizes volumes in bytes, by powers of ten
# How long a new block volume may take to become attachable.
VOLUME_READY_S = 60.0


def instance_tag(name: str) -> str:
    return f"{OURS}-instance={name}"


@dataclass(frozen=True)
class ScalewayConfig:
    access_key: str
    secret_key: str
    project_id: str
    zones: tuple[str, ...] = ("fr-par-2",)
    api_url: str = DEFAULT_API_URL
    # A marketplace label; Scaleway's GPU OS images carry the NVIDIA driver and Docker.
    image_label: str = "ubuntu_jammy_gpu_os_12"
    boot_volume_gb: int = 125
    data_volume_gb: int = 200
    # The ports the VM's boot opens (cloud-init): the worker agent's, and the engine's.
    agent_port: int = 8080
    engine_port: int = 8000
    max_in_flight: int = 8
    call_timeout_s: float = 60.0


UserData = Callable[[ServerSpec], bytes]


class Steps:
    """The steps of one create, each with its facts and how long it took."""

    def __init__(self) -> None:
        self.done: list[dict[str, object]] = []

    @contextlib.asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[dict[str, object]]:
        facts: dict[str, object] = {}
        started = time.monotonic()
        yield facts  # a step that raises is not said: the attempt's failure is
        self.done.append({"step": name, "ms": round((time.monotonic() - started) * 1000), **facts})


def provider_server(
    config: ScalewayConfig, server: Server, name: str | None = None
) -> ProviderServer:
    zone = str(server.zone)
    address = server.public_ip.address if server.public_ip else None
    if address is None and server.public_ips:
        address = server.public_ips[0].address
    state = str(server.state)
    return ProviderServer(
        provider_id=f"{zone}/{server.id}",
        name=name or server.name.removeprefix(f"{OURS}-"),
        status=state if state in ("running", "starting") else "stopped",
        zone=zone,
        ip_address=address,
        health_port=config.agent_port,
        engine_port=config.engine_port,
        details={"commercial_type": server.commercial_type, "state": state},
    )


def boot_volume(server: Server, name: str) -> ProviderVolume | None:
    for volume in (server.volumes or {}).values():
        if volume.boot:
            zone = str(server.zone)
            return ProviderVolume(
                provider_id=f"{zone}/{volume.id}",
                name=f"{OURS}-{name}-boot",
                zone=zone,
                size_gb=(volume.size or 0) // GB,
                server_id=f"{zone}/{server.id}",
                volume_type=str(volume.volume_type),
            )
    return None


def provider_volume(volume: BlockVolume, attached_to: str | None = None) -> ProviderVolume:
    zone = str(volume.zone)
    attached = attached_to or next((r.product_resource_id for r in volume.references), None)
    return ProviderVolume(
        provider_id=f"{zone}/{volume.id}",
        name=volume.name,
        zone=zone,
        size_gb=volume.size // GB,
        server_id=f"{zone}/{attached}" if attached else None,
        volume_type="sbs_volume",
    )


def split_id(provider_id: str) -> tuple[str, str]:
    zone, _, server_id = provider_id.partition("/")
    if not server_id:
        raise ProviderError(
            f"not a Scaleway id (zone/uuid): {provider_id[:80]!r}",
            retryable=False,
            code=INVALID_ARGUMENT,
        )
    return zone, server_id


def describe(config: ScalewayConfig) -> dict[str, Any]:
    """What may be said of a configuration: never its secret."""
    return {
        "api_url": config.api_url,
        "project_id": config.project_id,
        "zones": list(config.zones),
        "access_key": config.access_key[:7] + "…" if config.access_key else None,
    }
