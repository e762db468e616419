"""The worker agent and its mock engine as real processes, and the real orchestrator they
register and heartbeat to (see control_plane.py)."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from inventiv_common.net import free_port
from tests.support.processes import clean_env
from tests.support.waiting import wait_until
from tests.worker.control_plane import AttachedInstance, LiveOrchestrator

ENGINE_KEY = "engine-key-" + "e" * 24
MODEL = "inventiv/mock-echo"
HERE = Path(__file__).resolve().parent
# A folder whose `pynvml` answers as NVIDIA's library would for chosen GPUs.
FAKE_NVML = HERE / "fake_nvml"


class AgentProcess:
    """`python -m inventiv_worker.agent` in a session of its own, as on its VM: the Mock
    provider stops a server's runtime by its process group, which is never the test's."""

    def __init__(self, port: int, env: Mapping[str, str], log_path: Path) -> None:
        self.port = port
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "inventiv_worker.agent"],
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_answering(self, timeout: float = 60.0) -> None:
        def answers() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"the agent exited {self.proc.returncode}:\n{self.output()}")
            try:
                return httpx.get(f"{self.base_url}/healthz", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, timeout, "the agent answering /healthz")

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()


@dataclass
class WorkerRun:
    agent: AgentProcess
    engine_port: int
    state_dir: Path
    # The instance it runs for, when it has a control plane.
    instance: AttachedInstance | None = None

    @property
    def engine_url(self) -> str:
        return f"http://127.0.0.1:{self.engine_port}"

    @property
    def instance_id(self) -> uuid.UUID:
        assert self.instance is not None, "this agent has no control plane"
        return self.instance.instance_id

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.agent.base_url + path, timeout=30, **kwargs)


class StartWorker(Protocol):
    def __call__(
        self,
        orchestrator: LiveOrchestrator | None,
        *engine_flags: str,
        gate: Path | None = None,
        **env: str,
    ) -> WorkerRun: ...


def mock_engine_command(port: int, *flags: str, gate: Path | None = None) -> str:
    """The mock engine's command line; with `gate`, it starts only while that file
    exists (see gated_start.py)."""
    engine = [sys.executable, "-m", "inventiv_worker.mock_engine", "--port", str(port)]
    engine += ["--model", MODEL, *flags]
    if gate is not None:
        engine = [sys.executable, str(HERE / "gated_start.py"), str(gate), *engine]
    return shlex.join(engine)


@pytest.fixture(scope="module")
def orchestrator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveOrchestrator]:
    live = LiveOrchestrator(tmp_path_factory.mktemp("orchestrator"))
    yield live
    live.stop()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[StartWorker]:
    """Starts an agent beside a mock engine; with an orchestrator, for a new instance of
    its own (else with no control plane). Every agent is stopped at the end."""
    runs: list[tuple[WorkerRun, LiveOrchestrator | None]] = []

    def start(
        orchestrator: LiveOrchestrator | None,
        *engine_flags: str,
        gate: Path | None = None,
        **env: str,
    ) -> WorkerRun:
        engine_port, agent_port = free_port(), free_port()
        state_dir = tmp_path / f"state-{uuid.uuid4().hex[:6]}"
        instance = orchestrator.new_instance() if orchestrator else None
        variables = {
            "INSTANCE_ID": str(instance.instance_id if instance else uuid.uuid4()),
            # The Mock provider knows its runtimes by this id (ProcessRuntime.alive).
            "WORKER_ID": instance.server_id if instance else "no-server",
            "MODEL_ID": MODEL,
            "ENGINE_COMMAND": mock_engine_command(engine_port, *engine_flags, gate=gate),
            "ENGINE_URL": f"http://127.0.0.1:{engine_port}",
            "ENGINE_API_KEY": ENGINE_KEY,
            "WORKER_HOST": "127.0.0.1",
            "WORKER_PORT": str(agent_port),
            "WORKER_STATE_DIR": str(state_dir),
            "HEARTBEAT_INTERVAL_S": "0.5",
            "PROBE_INTERVAL_S": "0.2",
            "ENGINE_RESTART_BACKOFF_MAX_S": "1",
        }
        if orchestrator and instance:
            variables["CONTROL_PLANE_URL"] = orchestrator.url
            variables["WORKER_BOOTSTRAP_SECRET"] = instance.bootstrap_secret
        agent = AgentProcess(
            agent_port, clean_env(**{**variables, **env}), tmp_path / f"agent-{agent_port}.log"
        )
        run = WorkerRun(agent, engine_port, state_dir, instance)
        runs.append((run, orchestrator))
        if orchestrator and instance:
            orchestrator.server_running(
                instance, agent.proc.pid, agent_port, engine_port, state_dir
            )
        agent.wait_answering()
        return run

    yield start
    for run, orchestrator in runs:
        if orchestrator and run.instance:
            orchestrator.server_forgotten(run.instance)
        run.agent.stop()
