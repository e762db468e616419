"""Supervising the inference engine: start it, watch it, restart it, drain and stop it.

The agent reports what it sees (phase, health, queues); it never decides the
instance's lifecycle state, which is the control plane's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import random
import signal
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx

from inventiv_worker.config import WorkerConfig
from inventiv_worker.eventlog import EventLog
from inventiv_worker.sampling import parse_engine_metrics

STOP_GRACE_S = 15.0
# A run this long counts as healthy: the restart backoff starts again from its base.
STABLE_RUN_S = 60.0


class Phase(StrEnum):
    installing = "installing"
    starting = "starting"
    loading_model = "loading_model"
    ready = "ready"
    draining = "draining"
    stopped = "stopped"


@dataclass
class EngineState:
    phase: Phase = Phase.installing
    reason: str = "agent starting"
    model_loaded: bool = False
    restarts: int = 0
    last_exit_code: int | None = None
    pid: int | None = None
    engine_version: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.phase is Phase.ready

    def as_report(self) -> dict[str, Any]:
        return {
            "phase": self.phase.value,
            "healthy": self.ready,
            "model_loaded": self.model_loaded,
            "reason": self.reason,
            "restarts": self.restarts,
            "last_exit_code": self.last_exit_code,
            "engine_version": self.engine_version,
            **self.metrics,
        }


def _engine_preexec() -> None:
    # Own process group (our signals are ours to forward), and SIGTERM if the agent dies.
    os.setsid()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)


class EngineSupervisor:
    def __init__(self, config: WorkerConfig, events: EventLog, client: httpx.AsyncClient) -> None:
        self.config = config
        self.events = events
        self.client = client
        self.state = EngineState()
        self.changed = asyncio.Event()  # set on every phase change: heartbeat early
        self._process: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._headers = (
            {"Authorization": f"Bearer {config.engine_api_key}"} if config.engine_api_key else {}
        )

    # -- phases -----------------------------------------------------------------
    def _set_phase(self, phase: Phase, reason: str) -> None:
        if self.state.phase is Phase.draining and phase is not Phase.stopped:
            return  # draining only ends in stopped
        if phase is not self.state.phase:
            self.events.record(
                "phase", phase=phase.value, previous=self.state.phase.value, reason=reason
            )
            self.state.phase = phase
            self.changed.set()
        self.state.reason = reason

    # -- process ----------------------------------------------------------------
    async def _spawn(self) -> asyncio.subprocess.Process:
        assert self.config.engine_command
        env = dict(os.environ)
        if self.config.engine_api_key:
            # vLLM reads VLLM_API_KEY; the mock engine reads MOCK_ENGINE_API_KEY.
            env["VLLM_API_KEY"] = self.config.engine_api_key
            env["MOCK_ENGINE_API_KEY"] = self.config.engine_api_key
        log_file = (self.config.state_dir / "engine.log").open("ab")
        try:
            process = await asyncio.create_subprocess_exec(
                *self.config.engine_command,
                env=env,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=_engine_preexec,
            )
        finally:
            log_file.close()
        self.state.pid = process.pid
        self.events.record("engine_started", pid=process.pid, command=self.config.engine_command[0])
        return process

    async def supervise(self) -> None:
        """Keep the engine process running until stop(); restart it with backoff."""
        if not self.config.engine_command:
            self._set_phase(Phase.starting, "waiting for the external engine")
            return
        failures = 0
        while not self._stopping:
            self._set_phase(Phase.starting, "engine process starting")
            started = time.monotonic()
            try:
                self._process = await self._spawn()
            except OSError as exc:
                self.events.record("engine_start_failed", error=str(exc))
                code: int | None = None
            else:
                code = await self._process.wait()
            if self._stopping:
                break
            self.state.last_exit_code = code
            self.state.model_loaded = False
            self.state.restarts += 1
            failures = 0 if time.monotonic() - started > STABLE_RUN_S else failures + 1
            delay = min(self.config.restart_backoff_max_s, 0.5 * 2 ** max(failures - 1, 0))
            delay *= 0.5 + random.random() / 2  # noqa: S311 - jitter, not crypto
            self.events.record("engine_exited", exit_code=code, restart_in_s=round(delay, 2))
            self._set_phase(Phase.starting, f"engine exited with {code}; restarting")
            await asyncio.sleep(delay)

    # -- probing ----------------------------------------------------------------
    async def probe_once(self) -> None:
        url = self.config.engine_url
        try:
            response = await self.client.get(f"{url}/v1/models", headers=self._headers, timeout=2.0)
        except httpx.HTTPError:
            self.state.model_loaded = False
            if self.state.phase is Phase.ready:
                self.events.record("engine_unreachable")
            self._set_phase(Phase.starting, "engine does not answer")
            return
        if response.status_code == 401:
            self.state.model_loaded = False
            self._set_phase(Phase.starting, "engine refused the engine key")
            return
        if response.status_code != 200:
            self.state.model_loaded = False
            self._set_phase(Phase.loading_model, f"engine answered {response.status_code}")
            return
        served = {str(m.get("id")) for m in response.json().get("data", []) if isinstance(m, dict)}
        if self.config.model_id not in served:
            self.state.model_loaded = False
            self._set_phase(
                Phase.loading_model, f"engine serves {sorted(served)}, not {self.config.model_id}"
            )
            return
        self.state.model_loaded = True
        await (
            self._read_engine_facts()
        )  # before the phase changes: the heartbeat it wakes carries them
        self._set_phase(Phase.ready, "engine serves the model")

    async def _read_engine_facts(self) -> None:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            metrics = await self.client.get(f"{self.config.engine_url}/metrics", timeout=2.0)
            if metrics.status_code == 200:
                self.state.metrics = parse_engine_metrics(metrics.text)
            if self.state.engine_version is None:
                version = await self.client.get(f"{self.config.engine_url}/version", timeout=2.0)
                if version.status_code == 200:
                    self.state.engine_version = str(version.json().get("version"))

    async def probe_forever(self) -> None:
        while self.state.phase not in (Phase.draining, Phase.stopped):
            await self.probe_once()
            await asyncio.sleep(self.config.probe_interval_s)

    # -- shutdown ---------------------------------------------------------------
    async def drain_and_stop(self) -> None:
        """Stop taking traffic, let in-flight requests finish (up to the limit), stop."""
        self._set_phase(Phase.draining, "agent shutting down")
        deadline = time.monotonic() + self.config.drain_timeout_s
        while time.monotonic() < deadline:
            await self._read_engine_facts()
            metrics = self.state.metrics
            in_flight = metrics.get("requests_running", 0) + metrics.get("requests_waiting", 0)
            if in_flight == 0:
                break
            await asyncio.sleep(0.2)
        else:
            self.events.record("drain_timeout", in_flight=self.state.metrics)
        self._stopping = True
        await self._stop_process()
        self._set_phase(Phase.stopped, "engine stopped")

    async def _stop_process(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_S)
        except TimeoutError:
            process.kill()
            await process.wait()
        self.events.record("engine_stopped", exit_code=process.returncode)
