"""A stand-in for `pynvml` (nvidia-ml-py) where no NVIDIA driver exists: the GPUs that
FAKE_NVML_GPUS describes (a JSON list of {"utilization": %, "memory_used": bytes,
"memory_total": bytes, "temperature": degrees C, "power": milliwatts}), answered through
the calls and in the units of the real library. Put its folder first on PYTHONPATH
of the process under test."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

NVML_TEMPERATURE_GPU = 0
_initialized = False


class NVMLError(Exception):
    pass


@dataclass(frozen=True)
class c_nvmlUtilization_t:  # the real library's name
    gpu: int
    memory: int


@dataclass(frozen=True)
class c_nvmlMemory_t:  # the real library's name
    total: int
    free: int
    used: int


def _gpus() -> list[dict[str, Any]]:
    if not _initialized:
        raise NVMLError("Uninitialized")
    gpus: list[dict[str, Any]] = json.loads(os.environ.get("FAKE_NVML_GPUS", "[]"))
    return gpus


def nvmlInit() -> None:
    global _initialized
    if "FAKE_NVML_GPUS" not in os.environ:
        raise NVMLError("Driver Not Loaded")
    _initialized = True


def nvmlShutdown() -> None:
    global _initialized
    _initialized = False


def nvmlDeviceGetCount() -> int:
    return len(_gpus())


def nvmlDeviceGetHandleByIndex(index: int) -> int:
    if not 0 <= index < len(_gpus()):
        raise NVMLError("Invalid Argument")
    return index


def nvmlDeviceGetUtilizationRates(handle: int) -> c_nvmlUtilization_t:
    gpu = _gpus()[handle]
    return c_nvmlUtilization_t(gpu=gpu["utilization"], memory=0)


def nvmlDeviceGetMemoryInfo(handle: int) -> c_nvmlMemory_t:
    gpu = _gpus()[handle]
    total, used = gpu["memory_total"], gpu["memory_used"]
    return c_nvmlMemory_t(total=total, free=total - used, used=used)


def nvmlDeviceGetTemperature(handle: int, sensor: int) -> int:
    if sensor != NVML_TEMPERATURE_GPU:
        raise NVMLError("Not Supported")
    return int(_gpus()[handle]["temperature"])


def nvmlDeviceGetPowerUsage(handle: int) -> int:
    return int(_gpus()[handle]["power"])
