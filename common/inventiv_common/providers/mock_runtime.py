"""Runtimes behind mock servers.

`ProcessRuntime` starts, for each server, a real worker agent that itself runs a real
mock engine, as local processes on free loopback ports. They run in their own session
(like a VM outlives the control plane), so an orchestrator that crashes and restarts
finds its servers still there. `SimulatedRuntime` starts nothing: for benchmarks of
the control plane alone. `DockerRuntime` (docker_runtime) runs them as a container.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import psutil

from inventiv_common.net import free_port
from inventiv_common.providers.base import ServerSpec
from inventiv_common.providers.docker_runtime import DockerRuntime
from inventiv_common.providers.mock_timing import INSTANT, MockTimings

STOP_GRACE_S = 20.0
# Where the agent keeps its token in its state directory (inventiv_worker.link.TOKEN_FILE;
# the control plane imports nothing of the worker, a test holds the two names together).
WORKER_TOKEN_FILE = "worker_token"  # noqa: S105 - a file name


class Runtime(Protocol):
    name: str
    # False when starting leaves nothing outside the database (nothing to clean up if
    # the start is never recorded), so it needs no separate "starting" record.
    leaves_processes: bool

    def start(self, server_id: str, spec: ServerSpec) -> dict[str, Any]: ...

    def alive(self, details: dict[str, Any]) -> bool: ...

    def stop(self, details: dict[str, Any]) -> None: ...

    def stop_strays(self, server_id: str) -> None: ...

    def discard(self, details: dict[str, Any]) -> None:
        """The server is gone for good: remove the secrets it kept (its logs stay)."""
        ...


class ProcessRuntime:
    name = "process"
    leaves_processes = True

    def __init__(
        self, home: Path, *, timings: MockTimings = INSTANT, engine_flags: str = ""
    ) -> None:
        self.home = home
        self.timings = timings
        self.engine_flags = engine_flags

    def start(self, server_id: str, spec: ServerSpec) -> dict[str, Any]:
        state_dir = self.home / "runtimes" / server_id
        state_dir.mkdir(parents=True, exist_ok=True)
        health_port, engine_port = free_port(), free_port()
        engine = [
            sys.executable,
            "-m",
            "inventiv_worker.mock_engine",
            "--port",
            str(engine_port),
            "--model",
            spec.model,
            "--startup-delay",
            str(self.timings.engine_startup_s),
            *shlex.split(self.engine_flags),
        ]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "INSTANCE_ID": spec.name,
            "WORKER_ID": server_id,
            "MODEL_ID": spec.model,
            "CONTROL_PLANE_URL": spec.control_plane_url,
            "WORKER_BOOTSTRAP_SECRET": spec.bootstrap_secret,
            "ENGINE_API_KEY": spec.engine_key,
            "ENGINE_COMMAND": shlex.join(engine),
            "ENGINE_URL": f"http://127.0.0.1:{engine_port}",
            "WORKER_HOST": "127.0.0.1",
            "WORKER_PORT": str(health_port),
            "WORKER_STATE_DIR": str(state_dir),
            "HEARTBEAT_INTERVAL_S": str(spec.heartbeat_interval_s),
            "PROBE_INTERVAL_S": "0.5",
            **self.timings.setup_env(sys.executable),
        }
        log = (state_dir / "agent.log").open("ab")
        try:
            process = subprocess.Popen(
                self.timings.agent_command(sys.executable),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the orchestrator, like a VM would
            )
        finally:
            log.close()
        return {
            "runtime": self.name,
            "server_id": server_id,
            "agent_pid": process.pid,
            "health_port": health_port,
            "engine_port": engine_port,
            "state_dir": str(state_dir),
        }

    def _process(self, details: dict[str, Any]) -> psutil.Process | None:
        pid = details.get("agent_pid")
        if not isinstance(pid, int):
            return None
        try:
            process = psutil.Process(pid)
            # A recycled pid belongs to someone else: only ours carries the server id.
            if process.environ().get("WORKER_ID") != details.get("server_id"):
                return None
            return process if process.status() != psutil.STATUS_ZOMBIE else None
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None

    def alive(self, details: dict[str, Any]) -> bool:
        return self._process(details) is not None

    def stop(self, details: dict[str, Any]) -> None:
        process = self._process(details)
        if process is None:
            return
        group = os.getpgid(process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)  # the agent drains, then stops its engine
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and _group_alive(group):
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        # Reaps it when it is our child; a process started by another parent stays a
        # zombie until that parent reaps it, which is not ours to wait for.
        with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired, ChildProcessError):
            process.wait(timeout=1)

    def stop_strays(self, server_id: str) -> None:
        """Stop runtime processes of a server whose start was never recorded (the process
        that started them died before it could write their pid)."""
        for process in psutil.process_iter():
            with contextlib.suppress(
                psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess
            ):
                if process.environ().get("WORKER_ID") == server_id:
                    self.stop({"agent_pid": process.pid, "server_id": server_id})

    def discard(self, details: dict[str, Any]) -> None:
        # The agent's worker token, written 0600 in its state directory: a terminated
        # server's token is revoked, but a secret has no business outliving its use.
        state_dir = details.get("state_dir")
        if isinstance(state_dir, str):
            with contextlib.suppress(FileNotFoundError):
                (Path(state_dir) / WORKER_TOKEN_FILE).unlink()


def _group_alive(group: int) -> bool:
    for process in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
            if (
                os.getpgid(process.info["pid"]) == group
                and process.status() != psutil.STATUS_ZOMBIE
            ):
                return True
    return False


class SimulatedRuntime:
    """No process at all; the server is "running" as soon as it exists."""

    name = "simulated"
    leaves_processes = False

    def start(self, server_id: str, spec: ServerSpec) -> dict[str, Any]:
        return {"runtime": self.name}

    def alive(self, details: dict[str, Any]) -> bool:
        return True

    def stop(self, details: dict[str, Any]) -> None:
        return None

    def stop_strays(self, server_id: str) -> None:
        return None

    def discard(self, details: dict[str, Any]) -> None:
        return None


def build_runtime(
    kind: str,
    *,
    home: Path,
    docker_image: str,
    timings: MockTimings = INSTANT,
    engine_flags: str = "",
) -> Runtime:
    """The runtime MOCK_RUNTIME names; the orchestrator and the operator CLI share it."""
    if kind == "simulated":
        return SimulatedRuntime()
    if kind == "docker":
        return DockerRuntime(docker_image, timings=timings, engine_flags=engine_flags)
    return ProcessRuntime(home, timings=timings, engine_flags=engine_flags)
