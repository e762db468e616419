"""GPU telemetry, from NVML to the orchestrator's tables. No GPU exists here: the agent's
process gets a `pynvml` that answers, in NVIDIA's calls and units, for two chosen GPUs
(tests/worker/fake_nvml); everything from the agent's sampling on is the real thing."""

from __future__ import annotations

import json
import os
from typing import Any

from tests.support.waiting import wait_until
from tests.worker.conftest import FAKE_NVML, StartWorker
from tests.worker.control_plane import LiveOrchestrator

MIB, GIB = 2**20, 2**30
# As NVML gives them: utilization in %, memory in bytes, temperature in degrees C, power
# in milliwatts.
GPUS = [
    {
        "utilization": 87,
        "memory_used": 30 * GIB,
        "memory_total": 80 * GIB,
        "temperature": 71,
        "power": 312_500,
    },
    {
        "utilization": 12,
        "memory_used": 1536 * MIB,
        "memory_total": 80 * GIB,
        "temperature": 45,
        "power": 95_250,
    },
]
# What the orchestrator must store for each heartbeat: MiB and watts.
STORED = [
    {
        "gpu_index": 0,
        "utilization_pct": 87.0,
        "memory_used_mb": 30720.0,
        "memory_total_mb": 81920.0,
        "temperature_c": 71.0,
        "power_w": 312.5,
    },
    {
        "gpu_index": 1,
        "utilization_pct": 12.0,
        "memory_used_mb": 1536.0,
        "memory_total_mb": 81920.0,
        "temperature_c": 45.0,
        "power_w": 95.25,
    },
]


def with_gpus(gpus: list[dict[str, Any]]) -> dict[str, str]:
    """The agent's environment for a machine with these GPUs."""
    path = os.pathsep.join(p for p in (str(FAKE_NVML), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, "FAKE_NVML_GPUS": json.dumps(gpus)}


def test_gpu_figures_reach_the_orchestrator_as_nvml_gave_them(
    orchestrator: LiveOrchestrator, start_worker: StartWorker
) -> None:
    run = start_worker(orchestrator, **with_gpus(GPUS))
    samples = wait_until(
        lambda: orchestrator.rows(
            "SELECT gpu_index, utilization_pct, memory_used_mb, memory_total_mb, "
            "temperature_c, power_w FROM gpu_samples WHERE instance_id = :id "
            "ORDER BY time, gpu_index",
            id=run.instance_id,
        ),
        90,
        "the heartbeats' GPU samples written",
    )
    # Every heartbeat carries both GPUs, each with its own figures.
    assert len(samples) % 2 == 0
    assert samples[:2] == STORED
    assert all(sample == STORED[sample["gpu_index"]] for sample in samples)
    row = orchestrator.wait_instance(
        run.instance_id,
        lambda row: row["worker_gpu_utilization"] is not None,
        "the instance's GPU utilization written",
    )
    assert row["worker_gpu_utilization"] == (87.0 + 12.0) / 2

    metrics = run.get("/metrics").text
    for line in (
        'inventiv_worker_gpu_utilization_pct{gpu="0"} 87.0',
        'inventiv_worker_gpu_utilization_pct{gpu="1"} 12.0',
        'inventiv_worker_gpu_memory_used_mb{gpu="0"} 30720.0',
        'inventiv_worker_gpu_memory_total_mb{gpu="1"} 81920.0',
        'inventiv_worker_gpu_temperature_c{gpu="0"} 71.0',
        'inventiv_worker_gpu_power_w{gpu="1"} 95.25',
    ):
        assert line in metrics, line


def test_a_machine_whose_driver_does_not_load_reports_no_gpu(
    orchestrator: LiveOrchestrator, start_worker: StartWorker
) -> None:
    """NVML's init fails (no driver): the agent says so once and heartbeats on."""
    environment = with_gpus([])
    del environment["FAKE_NVML_GPUS"]  # the stand-in then fails nvmlInit, as NVML does
    run = start_worker(orchestrator, **environment)
    orchestrator.wait_instance(
        run.instance_id,
        lambda row: row["status"] == "ready" and row["worker_phase"] == "ready",
        "the orchestrator calling the instance ready",
    )
    assert run.agent.output().count("no GPU telemetry: Driver Not Loaded") == 1
    assert "inventiv_worker_gpu_" not in run.get("/metrics").text
    gpu_rows = orchestrator.rows(
        "SELECT * FROM gpu_samples WHERE instance_id = :id", id=run.instance_id
    )
    assert gpu_rows == []
