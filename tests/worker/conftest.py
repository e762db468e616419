"""A control-plane stand-in served on loopback inside the test, and helpers to start the
agent and the mock engine as real processes.

The stand-in implements the two worker endpoints the orchestrator will serve
(register, heartbeat) and records every call; the lifecycle work replaces it with the
real orchestrator.
"""

from __future__ import annotations

import secrets
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from inventiv_common.net import free_port
from tests.support.processes import ServiceProcess, clean_env

BOOTSTRAP = "bootstrap-" + "b" * 24
ENGINE_KEY = "engine-key-" + "e" * 24
MODEL = "inventiv/mock-echo"


@dataclass
class StandIn:
    url: str = ""
    registrations: list[dict[str, Any]] = field(default_factory=list)
    heartbeats: list[dict[str, Any]] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    refuse_next_heartbeats: int = 0

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for beat in reversed(self.heartbeats):
                if predicate(beat):
                    return beat
            time.sleep(0.05)
        raise AssertionError(f"no matching heartbeat in {timeout}s; last: {self.heartbeats[-1:]}")


def _stand_in_app(state: StandIn) -> FastAPI:
    app = FastAPI()

    @app.post("/internal/worker/register")
    async def register(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {BOOTSTRAP}":
            return JSONResponse({"error": "bad bootstrap secret"}, status_code=401)
        state.registrations.append(await request.json())
        token = "wt_" + secrets.token_urlsafe(16)
        state.tokens = {token}  # a new registration replaces the old token
        return JSONResponse({"token": token})

    @app.post("/internal/worker/heartbeat")
    async def heartbeat(request: Request) -> JSONResponse:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if state.refuse_next_heartbeats > 0:
            state.refuse_next_heartbeats -= 1
            state.tokens.discard(token)
        if token not in state.tokens:
            return JSONResponse({"error": "unknown token"}, status_code=401)
        state.heartbeats.append(await request.json())
        return JSONResponse({"ok": True})

    return app


@pytest.fixture
def control_plane() -> Iterator[StandIn]:
    state = StandIn()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(_stand_in_app(state), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    state.url = f"http://127.0.0.1:{port}"
    yield state
    server.should_exit = True
    thread.join(timeout=10)


@dataclass
class WorkerRun:
    agent: ServiceProcess
    engine_port: int
    state_dir: Path

    @property
    def engine_url(self) -> str:
        return f"http://127.0.0.1:{self.engine_port}"

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.agent.base_url + path, timeout=10, **kwargs)


def mock_engine_command(port: int, *extra: str) -> str:
    return " ".join(
        [
            sys.executable,
            "-m",
            "inventiv_worker.mock_engine",
            "--port",
            str(port),
            "--model",
            MODEL,
            *extra,
        ]
    )


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Any]:
    runs: list[WorkerRun] = []

    def start(control_plane_url: str | None, *engine_flags: str, **env: str) -> WorkerRun:
        engine_port, agent_port = free_port(), free_port()
        state_dir = tmp_path / f"state-{uuid.uuid4().hex[:6]}"
        variables = {
            "INSTANCE_ID": str(uuid.uuid4()),
            "MODEL_ID": MODEL,
            "ENGINE_COMMAND": mock_engine_command(engine_port, *engine_flags),
            "ENGINE_URL": f"http://127.0.0.1:{engine_port}",
            "ENGINE_API_KEY": ENGINE_KEY,
            "WORKER_BOOTSTRAP_SECRET": BOOTSTRAP,
            "WORKER_HOST": "127.0.0.1",
            "WORKER_PORT": str(agent_port),
            "WORKER_STATE_DIR": str(state_dir),
            "HEARTBEAT_INTERVAL_S": "0.5",
            "PROBE_INTERVAL_S": "0.2",
            "ENGINE_RESTART_BACKOFF_MAX_S": "1",
            **env,
        }
        if control_plane_url:
            variables["CONTROL_PLANE_URL"] = control_plane_url
        agent = ServiceProcess(
            "inventiv_worker.agent",
            agent_port,
            clean_env(**variables),
            tmp_path / f"agent-{agent_port}.log",
        )
        run = WorkerRun(agent, engine_port, state_dir)
        runs.append(run)
        agent.wait_ready("/healthz")
        return run

    yield start
    for run in runs:
        run.agent.stop(timeout=60)
