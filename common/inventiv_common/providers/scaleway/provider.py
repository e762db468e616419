"""The Scaleway provider: GPU servers through the official SDK (`scaleway`).

Every server and volume we make carries the tag `inventiv` and the tag of its instance
(`inventiv-instance=<id>`); the server is named after the instance. That is what makes
`create` idempotent across retries and restarts (a server carrying the instance's tag
is adopted, never made twice) and lets the watchdog and the storage loop find what is
ours in a project shared with other uses.

A create, step by step, each safe to repeat: the server (stopped, its boot volume on
block storage sized for the type), the model-cache data volume (block storage, sized
for the model, attached), the cloud-init user data, then power-on. It returns as soon as
the server is starting: the lifecycle's health pass follows it to `running` (and its
public IP) within the booting deadline, as for every provider.

Provider ids are `<zone>/<uuid>`: Scaleway's ids live in a zone, and every call needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

from scaleway import Client
from scaleway.block.v1 import BlockV1API
from scaleway.block.v1.types import CreateVolumeRequestFromEmpty
from scaleway.block.v1.types import Volume as BlockVolume
from scaleway.instance.v1 import Server, VolumeServerTemplate
from scaleway.instance.v1.custom_api import InstanceUtilsV1API
from scaleway.marketplace.v2 import MarketplaceV2API

from inventiv_common.providers.base import (
    CatalogType,
    ProviderError,
    ProviderServer,
    ProviderVolume,
    ServerSpec,
)
from inventiv_common.providers.scaleway.calls import SdkCalls
from inventiv_common.providers.scaleway.credentials import refusal as credentials_refusal
from inventiv_common.providers.scaleway.errors import INVALID_ARGUMENT, NOT_FOUND
from inventiv_common.providers.scaleway.shapes import (
    DEFAULT_API_URL,
    GB,
    OURS,
    VOLUME_READY_S,
    ScalewayConfig,
    Steps,
    UserData,
    boot_volume,
    instance_tag,
    provider_server,
    provider_volume,
    split_id,
)

# Where other modules have long found them.
__all__ = ["DEFAULT_API_URL", "ScalewayConfig", "ScalewayProvider", "UserData", "instance_tag"]


class ScalewayProvider:
    code = "scaleway"

    def __init__(self, config: ScalewayConfig, user_data: UserData) -> None:
        self.config = config
        self.user_data = user_data
        client = Client(
            access_key=config.access_key,
            secret_key=config.secret_key,
            default_project_id=config.project_id,
            default_zone=config.zones[0] if config.zones else "fr-par-2",
            api_url=config.api_url,
            # Plain HTTP only for a local API (the fake Scaleway of tests and make dev).
            api_allow_insecure=config.api_url.startswith("http://"),
        )
        self.client = client
        # Malformed keys are reported by check_credentials, not by a constructor.
        self.instance = InstanceUtilsV1API(client, bypass_validation=True)
        self.block = BlockV1API(client, bypass_validation=True)
        self.marketplace = MarketplaceV2API(client, bypass_validation=True)
        self.calls = SdkCalls(max_in_flight=config.max_in_flight, timeout_s=config.call_timeout_s)
        self._images: dict[tuple[str, str], str] = {}

    # -- the lifecycle ----------------------------------------------------------------
    async def create(self, spec: ServerSpec) -> ProviderServer:
        """Each step is timed and said in the answer's `details["steps"]` (the
        orchestrator logs each one): what was made, adopted or done, and how long it took."""
        zone, tag = spec.zone, instance_tag(spec.name)
        steps = Steps()
        # The data volume first, so the server is made with it attached in one call.
        async with steps.step("data_volume") as facts:
            data = await self._data_volume(zone, spec)
            facts["volume"] = f"{zone}/{data.id}"
        async with steps.step("server") as facts:
            server = await self._tagged_server(zone, tag)
            facts["adopted"] = server is not None
            if server is None:
                try:
                    server = await self._new_server(spec, data)
                except ProviderError as exc:
                    if not exc.retryable:
                        # This attempt is over (out of stock, quota, ...): its volume
                        # goes too, rather than bill until the storage loop finds it.
                        with contextlib.suppress(ProviderError):
                            await self.delete_volume(f"{zone}/{data.id}")
                    raise
            elif not any(r.product_resource_id == server.id for r in data.references):
                # A server adopted without it (made by hand, or by an older create).
                await self.calls(
                    "attaching the data volume",
                    self.instance.attach_server_volume,
                    server_id=server.id,
                    volume_id=data.id,
                    zone=zone,
                    volume_type="sbs_volume",
                )
            facts["server"] = f"{zone}/{server.id}"
        if str(server.state) in ("stopped", "stopped_in_place"):
            async with steps.step("user_data") as facts:
                # Set at every attempt: a retry after a crash sets the same content again.
                content = self.user_data(spec)
                await self.calls(
                    "setting the server's user data",
                    self.instance.set_server_user_data,
                    server_id=server.id,
                    key="cloud-init",
                    content=content,
                    zone=zone,
                )
                facts["bytes"] = len(content)
            async with steps.step("power_on"):
                try:
                    await self.calls(
                        "powering the server on",
                        self.instance.server_action,
                        server_id=server.id,
                        zone=zone,
                        action="poweron",
                    )
                except ProviderError as exc:
                    if not exc.retryable:  # out of stock at power-on: nothing may stay
                        await self._abandon(zone, server, data)
                    raise
                server = await self._server(zone, server.id) or server
        found = provider_server(self.config, server, name=spec.name)
        volumes = [provider_volume(data, attached_to=server.id)]
        boot = boot_volume(server, spec.name)
        if boot is not None:
            volumes.insert(0, boot)
        details = {**found.details, "steps": steps.done}
        return replace(found, volumes=tuple(volumes), details=details)

    async def get(self, provider_id: str) -> ProviderServer | None:
        zone, server_id = split_id(provider_id)
        server = await self._server(zone, server_id)
        return provider_server(self.config, server) if server else None

    async def get_many(self, provider_ids: Sequence[str]) -> list[ProviderServer]:
        by_zone: dict[str, list[str]] = {}
        for provider_id in provider_ids:
            zone, server_id = split_id(provider_id)
            by_zone.setdefault(zone, []).append(server_id)
        found: list[ProviderServer] = []
        for zone, ids in by_zone.items():
            for start in range(0, len(ids), 100):
                servers = await self.calls(
                    "listing servers",
                    self.instance.list_servers_all,
                    zone=zone,
                    servers=ids[start : start + 100],
                )
                found += [provider_server(self.config, s) for s in servers]
        return found

    async def find_by_name(self, name: str) -> ProviderServer | None:
        for zone in self.config.zones:
            server = await self._tagged_server(zone, instance_tag(name))
            if server is not None:
                return provider_server(self.config, server, name=name)
        return None

    async def terminate(self, provider_id: str) -> None:
        """Ask the server to go; the next call finds it going or gone. Its block
        volumes outlive it (Scaleway only detaches them): the terminator deletes them
        once detached, which Scaleway refuses (a retryable error) while it is going."""
        zone, server_id = split_id(provider_id)
        server = await self._server(zone, server_id)
        if server is None:
            return
        # Its block volumes outlive it: its boot volume is marked ours first, so that the
        # storage loop deletes it even when no instance tracks it (a server the watchdog
        # found, made by a create that died before tagging it).
        await self._claim_volumes(zone, server, server.name.removeprefix(f"{OURS}-"))
        state = str(server.state)
        if state in ("running", "starting"):
            # Powers off and deletes; the server's dynamic IP goes with it.
            await self.calls(
                "terminating the server",
                self.instance.server_action,
                server_id=server_id,
                zone=zone,
                action="terminate",
            )
        elif state in ("stopped", "stopped_in_place"):
            await self.calls(
                "deleting the server", self.instance.delete_server, zone=zone, server_id=server_id
            )
        await self._release_flexible_ips(zone, server)

    async def list_servers(self) -> list[ProviderServer]:
        found: list[ProviderServer] = []
        for zone in self.config.zones:
            servers = await self.calls(
                "listing our servers",
                self.instance.list_servers_all,
                zone=zone,
                project=self.config.project_id,
                tags=[OURS],
            )
            found += [provider_server(self.config, s) for s in servers]
        return found

    async def list_volumes(self, server_id: str | None = None) -> list[ProviderVolume]:
        zones = self.config.zones
        wanted = None
        if server_id is not None:
            zone, wanted = split_id(server_id)
            zones = (zone,)
        found: list[ProviderVolume] = []
        for zone in zones:
            volumes = await self.calls(
                "listing our volumes",
                self.block.list_volumes_all,
                include_deleted=False,
                zone=zone,
                project_id=self.config.project_id,
                tags=[OURS],
                product_resource_id=wanted,
            )
            found += [provider_volume(v) for v in volumes]
        return found

    async def delete_volume(self, provider_id: str) -> None:
        zone, volume_id = split_id(provider_id)
        try:
            await self.calls(
                "deleting a volume", self.block.delete_volume, zone=zone, volume_id=volume_id
            )
        except ProviderError as exc:
            if exc.code != NOT_FOUND:
                raise

    # -- the catalog and the account --------------------------------------------------
    async def sync_catalog(self) -> list[CatalogType]:
        """GPU types with their price and size, and where they are offered now: a type
        is offered in a zone unless Scaleway says it is in shortage there."""
        types: dict[str, CatalogType] = {}
        for zone in self.config.zones:
            listed = await self.calls(
                "listing server types", self.instance.list_servers_types, zone=zone, per_page=100
            )
            stock = await self.calls(
                "reading server type availability",
                self.instance.get_server_types_availability,
                zone=zone,
                per_page=100,
            )
            for code, kind in listed.servers.items():
                if not kind.gpu:
                    continue
                availability = stock.servers.get(code)
                state = str(availability.availability) if availability else "shortage"
                known = types.get(code)
                zones = dict(known.availability) if known else {}
                zones[zone] = state
                info = kind.gpu_info
                types[code] = CatalogType(
                    code=code,
                    hourly_price_eur=Decimal(str(kind.hourly_price)),
                    zones=tuple(z for z, s in zones.items() if s != "shortage"),
                    gpu_count=int(kind.gpu or 0),
                    gpu_memory_gb=round((info.gpu_memory if info else 0) / 1024**3),
                    vcpus=kind.ncpus,
                    ram_gb=round(kind.ram / 1024**3),
                    availability=zones,
                )
        return list(types.values())

    async def check_credentials(self) -> bool:
        """True when Scaleway accepts the keys for the project's servers (credentials.py
        says why not). A Scaleway that cannot be asked raises."""
        return await credentials_refusal(self) is None

    # -- plumbing ---------------------------------------------------------------------
    async def _new_server(self, spec: ServerSpec, data: BlockVolume) -> Server:
        zone = spec.zone
        image = await self._image(zone, spec.instance_type)
        boot_gb = max(spec.boot_volume_gb or 0, self.config.boot_volume_gb)
        made = await self.calls(
            "creating the server",
            self.instance.create_server,
            zone=zone,
            commercial_type=spec.instance_type,
            name=f"{OURS}-{spec.name}",
            image=image,
            volumes={
                # Sized here, so an image smaller than the type needs is grown.
                "0": VolumeServerTemplate(
                    volume_type="sbs_volume",
                    boot=True,
                    size=boot_gb * GB,
                    name=f"{OURS}-{spec.name}-boot",
                ),
                "1": VolumeServerTemplate(volume_type="sbs_volume", id=data.id),
            },
            dynamic_ip_required=True,
            project=self.config.project_id,
            tags=[OURS, instance_tag(spec.name)],
        )
        if made.server is None:
            raise ProviderError("Scaleway answered a create without its server")
        server: Server = made.server
        # The boot volume is made with the server, untagged: tagged now, so that once
        # the server is gone the storage loop knows it for ours (terminate tags it too,
        # should this attempt die before it gets here).
        await self._claim_volumes(zone, server, spec.name)
        return server

    async def _claim_volumes(self, zone: str, server: Server, name: str) -> None:
        """Tag the server's block boot volume as ours (its data volume is made tagged;
        a volume someone else attached is theirs)."""
        for volume in (server.volumes or {}).values():
            if volume.boot and str(volume.volume_type) == "sbs_volume":
                await self.calls(
                    "tagging the boot volume",
                    self.block.update_volume,
                    volume_id=volume.id,
                    zone=zone,
                    tags=[OURS, instance_tag(name), "inventiv-volume=boot"],
                )

    async def _abandon(self, zone: str, server: Server, data: BlockVolume) -> None:
        """Undo an attempt that cannot go on: the stopped server, then its volumes (a
        deleted server leaves its block volumes behind). What fails here is left to the
        watchdog and the storage loop, which find what is ours by its tags."""
        boot = [v.id for v in (server.volumes or {}).values() if v.boot]
        with contextlib.suppress(ProviderError):
            await self.calls(
                "deleting the server", self.instance.delete_server, zone=zone, server_id=server.id
            )
            for volume_id in (*boot, data.id):
                await self.delete_volume(f"{zone}/{volume_id}")

    async def _tagged_server(self, zone: str, tag: str) -> Server | None:
        servers = await self.calls(
            "looking for the instance's server",
            self.instance.list_servers_all,
            zone=zone,
            project=self.config.project_id,
            tags=[tag],
        )
        return servers[0] if servers else None

    async def _server(self, zone: str, server_id: str) -> Server | None:
        try:
            found = await self.calls(
                "reading the server", self.instance.get_server, zone=zone, server_id=server_id
            )
        except ProviderError as exc:
            if exc.code == NOT_FOUND:
                return None
            raise
        return found.server

    async def _image(self, zone: str, commercial_type: str) -> str:
        key = (zone, commercial_type)
        if key not in self._images:
            images = await self.calls(
                "finding the image",
                self.marketplace.list_local_images_all,
                zone=zone,
                image_label=self.config.image_label,
            )
            fitting = [i for i in images if commercial_type in i.compatible_commercial_types]
            if not fitting:
                raise ProviderError(
                    f"no image {self.config.image_label!r} for {commercial_type} in {zone}",
                    retryable=False,
                    code=INVALID_ARGUMENT,
                )
            self._images[key] = fitting[0].id
        return self._images[key]

    async def _data_volume(self, zone: str, spec: ServerSpec) -> BlockVolume:
        """The model cache: found by its tags, else made; ready to attach."""
        tags = [OURS, instance_tag(spec.name), "inventiv-volume=data"]
        found = await self.calls(
            "looking for the data volume",
            self.block.list_volumes_all,
            include_deleted=False,
            zone=zone,
            project_id=self.config.project_id,
            tags=tags,
        )
        # Block lists match any tag asked for: keep those with every one.
        ours = [v for v in found if set(tags) <= set(v.tags)]
        if ours:
            volume: BlockVolume = ours[0]
        else:
            volume = await self.calls(
                "creating the data volume",
                self.block.create_volume,
                zone=zone,
                name=f"{OURS}-{spec.name}-data",
                project_id=self.config.project_id,
                from_empty=CreateVolumeRequestFromEmpty(
                    size=(spec.data_volume_gb or self.config.data_volume_gb) * GB
                ),
                tags=tags,
            )
        deadline = time.monotonic() + VOLUME_READY_S
        while str(volume.status) not in ("available", "in_use"):
            if time.monotonic() > deadline:
                raise ProviderError(f"the data volume stayed {volume.status}; will retry")
            await asyncio.sleep(1.0)
            volume = await self.calls(
                "reading the data volume", self.block.get_volume, zone=zone, volume_id=volume.id
            )
        return volume

    async def _release_flexible_ips(self, zone: str, server: Server) -> None:
        """Flexible IPs tagged ours and bound to this server (a dynamic IP goes with
        its server on its own)."""
        for ip in server.public_ips or []:
            if ip.dynamic:
                continue
            try:
                await self.calls(
                    "releasing the public IP", self.instance.delete_ip, zone=zone, ip=ip.id
                )
            except ProviderError as exc:
                if exc.code != NOT_FOUND:
                    raise
