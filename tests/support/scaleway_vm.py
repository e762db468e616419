"""A GPU VM as the rendered cloud-init would run it, on this machine.

`read_user_data` reads back what the user data makes the VM run: the files it writes,
the agent's environment (the env file the unit sources) and vLLM's command line.
`start_vm` is what a fake cloud does on power-on: it starts the real worker agent with
exactly that environment, except for what this machine cannot have, each named below,
and the repository's mock engine in place of vLLM, given the model, max model length
and engine key the rendered command gives vLLM. `VmHost` holds those VMs by server id
behind the fake Scaleway cloud's power hooks.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

from inventiv_common.net import free_port
from inventiv_common.providers import cloud_init

# docker run options of the rendered command that take a value (the others are flags).
_DOCKER_VALUED = {"--name", "--gpus", "--ipc", "--network", "--volume", "--env", "--entrypoint"}
_DOCKER_FLAGS = {"--rm", "--init"}


@dataclass(frozen=True)
class WrittenFile:
    path: str
    content: str
    permissions: str
    owner: str


@dataclass(frozen=True)
class EngineRun:
    """vLLM's launch, read from the agent's ENGINE_COMMAND."""

    image: str
    model: str
    served_name: str
    host: str
    port: int
    tensor_parallel_size: int
    max_model_len: int
    extra_args: tuple[str, ...]
    docker_options: dict[str, tuple[str, ...]]  # every value of each docker run option

    @property
    def forwarded_env(self) -> tuple[str, ...]:
        """Variables docker copies from the agent's environment into the container."""
        return tuple(e for e in self.docker_options.get("--env", ()) if "=" not in e)


@dataclass(frozen=True)
class VmPlan:
    document: dict[str, Any]
    files: dict[str, WrittenFile]
    agent_env: dict[str, str]
    engine: EngineRun


def read_user_data(user_data: str) -> VmPlan:
    assert user_data.startswith("#cloud-config\n"), "cloud-init reads only #cloud-config"
    document = yaml.safe_load(user_data)
    files = {
        f["path"]: WrittenFile(f["path"], f["content"], f["permissions"], f["owner"])
        for f in document["write_files"]
    }
    agent_env = source_env_file(files[cloud_init.AGENT_ENV_FILE].content)
    engine = parse_engine_command(shlex.split(agent_env["ENGINE_COMMAND"]))
    return VmPlan(document, files, agent_env, engine)


def source_env_file(text: str) -> dict[str, str]:
    """The variables `set -a; . FILE` defines: POSIX word rules, as sh applies them."""
    env: dict[str, str] = {}
    for word in shlex.split(text, comments=True):
        name, sep, value = word.partition("=")
        assert sep and name.isidentifier(), f"not an assignment: {word[:80]!r}"
        env[name] = value
    return env


def parse_engine_command(argv: list[str]) -> EngineRun:
    assert argv[:2] == ["docker", "run"], f"the engine is not a docker run: {argv[:3]}"
    options: dict[str, list[str]] = {}
    index = 2
    while argv[index].startswith("-"):
        option = argv[index]
        if option in _DOCKER_FLAGS:
            options.setdefault(option, []).append("")
            index += 1
        else:
            assert option in _DOCKER_VALUED, f"docker option not understood: {option}"
            options.setdefault(option, []).append(argv[index + 1])
            index += 2
    image, rest = argv[index], argv[index + 1 :]
    assert options.get("--entrypoint") == ["vllm"] and rest[0] == "serve", rest[:1]
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("model")
    parser.add_argument("--served-model-name", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tensor-parallel-size", type=int, required=True)
    parser.add_argument("--max-model-len", type=int, required=True)
    known, extra = parser.parse_known_args(rest[1:])
    return EngineRun(
        image=image,
        model=known.model,
        served_name=known.served_model_name,
        host=known.host,
        port=known.port,
        tensor_parallel_size=known.tensor_parallel_size,
        max_model_len=known.max_model_len,
        extra_args=tuple(extra),
        docker_options={k: tuple(v) for k, v in options.items()},
    )


@dataclass
class RunningVm:
    process: subprocess.Popen[bytes]
    agent_url: str
    engine_url: str
    state_dir: Path
    env: dict[str, str]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, path: str = "/healthz", timeout: float = 60.0) -> httpx.Response:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"agent exited {self.process.returncode}:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                last = response = httpx.get(self.agent_url + path, timeout=2)
                if response.status_code == 200:
                    return response
            time.sleep(0.2)
        raise AssertionError(f"agent {path} not 200 in {timeout}s (last {last}):\n{self.output()}")

    def stop(self, timeout: float = 30.0) -> None:
        """Power off: SIGTERM to the agent (it drains and stops its engine), then kill
        whatever of the VM outlived it (the engine runs in its own session)."""
        left: list[psutil.Process] = []
        with contextlib.suppress(psutil.NoSuchProcess):
            left = psutil.Process(self.process.pid).children(recursive=True)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for child in left:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


def start_vm(user_data: str, work_dir: Path, *, own_ports: bool = True) -> RunningVm:
    """Power on: the VM's agent as a real process, with the rendered environment.

    What differs from the VM, because this machine is not one: the agent and the
    engine bind loopback (on the ports the user data gives them, which a test chooses
    free, or free ports of their own with `own_ports`); the state directory is under
    `work_dir`; there is no Docker image to pull (SETUP_COMMAND is dropped) and the
    mock engine runs instead of vLLM. The engine key reaches the mock the way it
    reaches vLLM: from the agent's environment (which the rendered command forwards).
    """
    plan = read_user_data(user_data)
    engine = plan.engine
    assert "VLLM_API_KEY" in engine.forwarded_env, "vLLM would start without the engine key"
    if own_ports:
        agent_port, engine_port = free_port(), free_port()
    else:  # where the control plane expects them: the ports the user data gives
        agent_port, engine_port = int(plan.agent_env["WORKER_PORT"]), engine.port
    state_dir = work_dir / "var-lib-inventiv-worker"
    state_dir.mkdir(parents=True, exist_ok=True)
    mock_engine = [
        sys.executable,
        "-m",
        "inventiv_worker.mock_engine",
        "--host",
        "127.0.0.1",
        "--port",
        str(engine_port),
        "--model",
        engine.served_name,  # the id vLLM answers to; the mock serves what it is given
        "--max-model-len",
        str(engine.max_model_len),
    ]
    env = {k: v for k, v in plan.agent_env.items() if k != "SETUP_COMMAND"}
    env.update(
        PATH=os.environ.get("PATH", "/usr/bin:/bin"),
        ENGINE_COMMAND=shlex.join(mock_engine),
        ENGINE_URL=f"http://127.0.0.1:{engine_port}",
        WORKER_HOST="127.0.0.1",
        WORKER_PORT=str(agent_port),
        WORKER_STATE_DIR=str(state_dir),
    )
    log_path = work_dir / "agent-stdout.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "inventiv_worker.agent"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the VM's processes: one group, stopped together
        )
    return RunningVm(
        process=process,
        agent_url=f"http://127.0.0.1:{agent_port}",
        engine_url=f"http://127.0.0.1:{engine_port}",
        state_dir=state_dir,
        env=env,
        log_path=log_path,
    )


class VmHost:
    """Where the fake cloud's servers run: `FakeScalewayCloud(on_running=host.on_running,
    on_stopped=host.on_stopped)` boots each server's user data as a VM here. A server
    keeps its directory across power cycles, as a VM keeps its disk."""

    def __init__(self, work_dir: Path, *, own_ports: bool = True) -> None:
        self.work_dir = work_dir
        # False: each VM listens where its user data says (one VM at a time per host).
        self.own_ports = own_ports
        self.vms: dict[str, RunningVm] = {}
        self._lock = threading.Lock()

    def on_running(self, server: dict[str, Any], user_data: dict[str, bytes]) -> None:
        server_id = str(server["id"])
        vm = start_vm(
            user_data["cloud-init"].decode(), self.work_dir / server_id, own_ports=self.own_ports
        )
        with self._lock:
            previous, self.vms[server_id] = self.vms.get(server_id), vm
        if previous is not None:
            previous.stop()

    def on_stopped(self, server: dict[str, Any]) -> None:
        with self._lock:
            vm = self.vms.pop(str(server["id"]), None)
        if vm is not None:
            vm.stop()

    def stop_all(self) -> None:
        with self._lock:
            vms, self.vms = list(self.vms.values()), {}
        for vm in vms:
            vm.stop()
