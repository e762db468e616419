"""What the fake cloud sells: server types per zone and the marketplace's local images.

The GPU types and their zones follow Scaleway's public documentation (L4, L40S, H100 and
H100-SXM in fr-par-2 and pl-waw-2); prices are round figures near the public list, not
a copy of it: tests compare what they set, never Scaleway's real prices.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

GIB = 1024**3
GB = 1000**3

GPU_ZONES = ("fr-par-2", "pl-waw-2")
ZONES = ("fr-par-1", "fr-par-2", "fr-par-3", "nl-ams-1", "nl-ams-2", "pl-waw-1", "pl-waw-2")


@dataclass(frozen=True)
class ServerType:
    name: str
    hourly_price: Decimal
    ncpus: int
    ram_gib: int
    gpu: int = 0
    gpu_name: str = ""
    gpu_memory_gib: int = 0
    # GPU types boot from Block Storage only; small CPU types also take local volumes.
    local_volumes: bool = False

    def as_json(self) -> dict[str, object]:
        local_max = 20 * GB if self.local_volumes else 0
        return {
            "alt_names": [],
            "arch": "x86_64",
            "ncpus": self.ncpus,
            "ram": self.ram_gib * GIB,
            "gpu": self.gpu,
            "gpu_info": (
                {
                    "gpu_manufacturer": "NVIDIA",
                    "gpu_name": self.gpu_name,
                    "gpu_memory": self.gpu_memory_gib * GIB,
                }
                if self.gpu
                else None
            ),
            "hourly_price": float(self.hourly_price),
            "monthly_price": float(self.hourly_price * 730),
            "per_volume_constraint": {"l_ssd": {"min_size": 0, "max_size": local_max}},
            "volumes_constraint": {"min_size": 0, "max_size": local_max},
            "scratch_storage_max_size": None,
            "scratch_storage_max_volumes_count": 0,
            "block_bandwidth": 2_000_000_000,
            "end_of_service": False,
            "network": {
                "interfaces": [{"internal_bandwidth": None, "internet_bandwidth": 2_500_000_000}],
                "ipv6_support": True,
                "sum_internal_bandwidth": None,
                "sum_internet_bandwidth": 2_500_000_000,
            },
            "capabilities": {
                "block_storage": True,
                "boot_types": ["local", "rescue"],
                "max_file_systems": 0,
            },
        }


def _gpu_family(
    prefix: str, suffix: str, per_gpu: tuple[str, int, int, int, str], counts: tuple[int, ...]
) -> list[ServerType]:
    gpu_name, vcpus, ram_gib, memory_gib, hourly = per_gpu
    return [
        ServerType(
            name=f"{prefix}-{n}-{suffix}",
            hourly_price=Decimal(hourly) * n,
            ncpus=vcpus * n,
            ram_gib=ram_gib * n,
            gpu=n,
            gpu_name=gpu_name,
            gpu_memory_gib=memory_gib,
        )
        for n in counts
    ]


GPU_TYPES: tuple[ServerType, ...] = (
    *_gpu_family("L4", "24G", ("L4", 8, 48, 24, "0.75"), (1, 2, 4, 8)),
    *_gpu_family("L40S", "48G", ("L40S", 8, 96, 48, "1.40"), (1, 2, 4, 8)),
    *_gpu_family("H100", "80G", ("H100", 24, 240, 80, "2.75"), (1, 2)),
    *_gpu_family("H100-SXM", "80G", ("H100", 16, 120, 80, "3.00"), (2, 4, 8)),
)
CPU_TYPES: tuple[ServerType, ...] = (
    ServerType("DEV1-S", Decimal("0.0088"), 2, 2, local_volumes=True),
    ServerType("PRO2-XXS", Decimal("0.0550"), 2, 8),
)


def server_types_in(zone: str) -> dict[str, ServerType]:
    if zone not in ZONES:
        return {}
    types = list(CPU_TYPES) + (list(GPU_TYPES) if zone in GPU_ZONES else [])
    return {t.name: t for t in types}


@dataclass(frozen=True)
class LocalImage:
    id: str
    label: str
    zone: str
    compatible_commercial_types: tuple[str, ...]
    root_size: int = 20 * GB

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "label": self.label,
            "zone": self.zone,
            "arch": "x86_64",
            "type": "instance_sbs",
            "compatible_commercial_types": list(self.compatible_commercial_types),
        }


GPU_IMAGE_LABELS = ("ubuntu_jammy_gpu_os_12", "ubuntu_noble_gpu_os_12")
CPU_IMAGE_LABELS = ("ubuntu_jammy", "ubuntu_noble")


def local_images_in(zone: str) -> list[LocalImage]:
    """A zone's images; ids are stable (derived from zone and label) across restarts."""
    types = server_types_in(zone)
    gpu = tuple(name for name, t in types.items() if t.gpu)
    cpu = tuple(name for name, t in types.items() if not t.gpu)
    images = []
    for label in GPU_IMAGE_LABELS if gpu else ():
        images.append(LocalImage(_image_id(zone, label), label, zone, gpu, root_size=40 * GB))
    for label in CPU_IMAGE_LABELS if types else ():
        images.append(LocalImage(_image_id(zone, label), label, zone, cpu))
    return images


def _image_id(zone: str, label: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-scaleway:{zone}:{label}"))
