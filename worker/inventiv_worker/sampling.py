"""Facts about the machine and the engine: system, GPUs (when present), engine queues."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)


def system_sample(disk_path: Path) -> dict[str, Any]:
    memory = psutil.virtual_memory()
    disk = shutil.disk_usage(disk_path if disk_path.exists() else Path("/"))
    net = psutil.net_io_counters()
    return {
        "cpu_pct": psutil.cpu_percent(interval=None),
        "load_1m": psutil.getloadavg()[0],
        "memory_used_bytes": memory.total - memory.available,
        "memory_total_bytes": memory.total,
        "disk_used_bytes": disk.used,
        "disk_total_bytes": disk.total,
        "net_rx_bytes": net.bytes_recv if net else 0,
        "net_tx_bytes": net.bytes_sent if net else 0,
    }


class GpuSampler:
    """Per-GPU figures through NVML; on a machine without an NVIDIA driver it reports
    no GPU, once, and stays quiet."""

    def __init__(self) -> None:
        self.available = False
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self.available = True
        except Exception as exc:  # the library, the driver or the device may be missing
            log.info("no GPU telemetry: %s", exc)

    def sample(self) -> list[dict[str, Any]]:
        if not self.available:
            return []
        nvml = self._nvml
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            util = nvml.nvmlDeviceGetUtilizationRates(handle)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                {
                    "gpu_index": index,
                    "utilization_pct": float(util.gpu),
                    "memory_used_mb": memory.used / 2**20,
                    "memory_total_mb": memory.total / 2**20,
                    "temperature_c": float(
                        nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
                    ),
                    "power_w": nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,
                }
            )
        return gpus


# vLLM's metric names (the mock engine serves the same ones).
ENGINE_METRICS = {
    "vllm:num_requests_running": "requests_running",
    "vllm:num_requests_waiting": "requests_waiting",
    "vllm:gpu_cache_usage_perc": "kv_cache_usage",
    "vllm:kv_cache_usage_perc": "kv_cache_usage",
}
_SAMPLE_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfNa]+)")


def parse_engine_metrics(text: str) -> dict[str, float]:
    """Queue depth, running requests and KV-cache use, summed over label sets."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE_LINE.match(line)
        if not match or match.group(1) not in ENGINE_METRICS:
            continue
        key = ENGINE_METRICS[match.group(1)]
        try:
            values[key] = values.get(key, 0.0) + float(match.group(3))
        except ValueError:
            continue
    return values
