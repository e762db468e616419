"""The agent's /metrics: gathered at scrape time, so values are never stale."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from inventiv_worker.engine import Phase
from inventiv_worker.sampling import system_sample

if TYPE_CHECKING:
    from collections.abc import Iterator

    from prometheus_client.metrics_core import Metric

    from inventiv_worker.agent import Agent

PREFIX = "inventiv_worker"


class AgentCollector(Collector):
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        agent = self.agent
        state = agent.engine.state
        phase = GaugeMetricFamily(f"{PREFIX}_phase", "1 for the current phase", labels=["phase"])
        for candidate in Phase:
            phase.add_metric([candidate.value], 1.0 if candidate is state.phase else 0.0)
        yield phase
        yield GaugeMetricFamily(
            f"{PREFIX}_ready", "1 when the engine serves the model", value=float(state.ready)
        )
        yield CounterMetricFamily(
            f"{PREFIX}_engine_restarts", "Engine restarts", value=state.restarts
        )
        yield CounterMetricFamily(
            f"{PREFIX}_heartbeat_failures", "Failed heartbeats", value=agent.link.heartbeat_failures
        )
        for key, help_text in (
            ("requests_running", "Requests the engine is running"),
            ("requests_waiting", "Requests queued in the engine"),
            ("kv_cache_usage", "Engine KV-cache use, 0..1"),
        ):
            if key in state.metrics:
                yield GaugeMetricFamily(
                    f"{PREFIX}_engine_{key}", help_text, value=state.metrics[key]
                )

        system = system_sample(agent.config.state_dir)
        for key, value in system.items():
            yield GaugeMetricFamily(
                f"{PREFIX}_system_{key}", f"System {key.replace('_', ' ')}", value=float(value)
            )

        gpus = agent.gpus.sample()
        if gpus:
            for key in (
                "utilization_pct",
                "memory_used_mb",
                "memory_total_mb",
                "temperature_c",
                "power_w",
            ):
                family = GaugeMetricFamily(
                    f"{PREFIX}_gpu_{key}", f"GPU {key.replace('_', ' ')}", labels=["gpu"]
                )
                for gpu in gpus:
                    family.add_metric([str(gpu["gpu_index"])], float(gpu[key]))
                yield family


def render_metrics(agent: Agent) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(agent))
    return generate_latest(registry), CONTENT_TYPE_LATEST
