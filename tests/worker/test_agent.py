"""The worker agent as a real process, beside a real mock engine, against a stand-in
control plane on loopback."""

from __future__ import annotations

import json
import signal
import stat
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psutil

from tests.worker.conftest import BOOTSTRAP, ENGINE_KEY, MODEL, StandIn, WorkerRun


def wait_ready(run: WorkerRun, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Poll /readyz until 200; returns every answer seen on the way."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = run.get("/readyz")
        seen.append({"status": response.status_code, **response.json()})
        if response.status_code == 200:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"never ready: {seen[-3:]}\n{run.agent.output()[-2000:]}")


def engine_process(run: WorkerRun) -> psutil.Process:
    children = psutil.Process(run.agent.proc.pid).children(recursive=True)
    return next(p for p in children if "mock_engine" in " ".join(p.cmdline()))


def test_readiness_follows_model_loading(control_plane: StandIn, start_worker: Any) -> None:
    run = start_worker(control_plane.url, "--startup-delay", "2")
    seen = wait_ready(run)
    not_ready = [s for s in seen if s["status"] == 503]
    assert not_ready, "the model takes 2 s to load: readiness must have said 503 first"
    assert {s["phase"] for s in not_ready} <= {"installing", "starting", "loading_model"}
    assert any(s["phase"] == "loading_model" for s in not_ready)
    assert seen[-1] == {
        "status": 200,
        "ready": True,
        "phase": "ready",
        "reason": "engine serves the model",
    }
    assert run.get("/healthz").json() == {"status": "ok"}


def test_registers_once_then_heartbeats_with_metrics(
    control_plane: StandIn, start_worker: Any
) -> None:
    run = start_worker(control_plane.url)
    beat = control_plane.wait_for(lambda b: b["phase"] == "ready")
    registration = control_plane.registrations[0]
    info = run.get("/info").json()
    assert registration["agent_checksum"] == info["agent_checksum"] == beat["agent_checksum"]
    assert registration["model_id"] == MODEL and registration["instance_id"] == info["instance_id"]
    assert len(info["agent_checksum"]) == 64 and info["agent_version"]
    assert info["engine_version"] == "mock-0.1"

    assert beat["engine"]["healthy"] is True and beat["engine"]["model_loaded"] is True
    assert beat["engine"]["requests_running"] == 0.0
    assert beat["system"]["memory_total_bytes"] > 0 and beat["system"]["disk_total_bytes"] > 0
    assert beat["gpus"] == []  # no GPU here, and no error either

    token_file = run.state_dir / "worker_token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text() in control_plane.tokens
    assert len(control_plane.registrations) == 1
    assert BOOTSTRAP not in run.agent.output() and token_file.read_text() not in run.agent.output()

    metrics = run.get("/metrics").text
    for name in (
        'inventiv_worker_phase{phase="ready"} 1.0',
        "inventiv_worker_ready 1.0",
        "inventiv_worker_engine_requests_running",
        "inventiv_worker_engine_kv_cache_usage",
        "inventiv_worker_system_cpu_pct",
        "inventiv_worker_system_net_rx_bytes",
    ):
        assert name in metrics, name
    assert "inventiv_worker_gpu_" not in metrics


def test_reregisters_after_a_401(control_plane: StandIn, start_worker: Any) -> None:
    start_worker(control_plane.url)
    control_plane.wait_for(lambda b: b["phase"] == "ready")
    first_token = next(iter(control_plane.tokens))
    control_plane.refuse_next_heartbeats = 1
    deadline = time.monotonic() + 20
    while len(control_plane.registrations) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(control_plane.registrations) == 2
    before = len(control_plane.heartbeats)
    control_plane.wait_for(lambda b: control_plane.heartbeats.index(b) >= before)
    assert first_token not in control_plane.tokens


def test_engine_is_restarted_and_the_phase_reported(
    control_plane: StandIn, start_worker: Any
) -> None:
    run = start_worker(control_plane.url)
    wait_ready(run)
    first = engine_process(run)
    first.kill()
    control_plane.wait_for(lambda b: b["phase"] == "starting" and b["engine"]["restarts"] >= 1)
    beat = control_plane.wait_for(lambda b: b["phase"] == "ready" and b["engine"]["restarts"] == 1)
    assert beat["engine"]["last_exit_code"] == -signal.SIGKILL
    assert engine_process(run).pid != first.pid
    events = [
        json.loads(line)["event"]
        for line in run.get("/logs", params={"tail": 100}).text.splitlines()
    ]
    assert events.count("engine_started") == 2 and "engine_exited" in events


def test_logs_tail_since_and_bad_values(control_plane: StandIn, start_worker: Any) -> None:
    run = start_worker(control_plane.url)
    wait_ready(run)
    response = run.get("/logs", params={"tail": 2})
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    everything = [
        json.loads(line) for line in run.get("/logs", params={"tail": 5000}).text.splitlines()
    ]
    assert len(lines) == 2 and lines == everything[-2:]
    assert everything[0]["event"] == "agent_started"

    cut = datetime.fromisoformat(everything[1]["ts"])
    after = [
        json.loads(line)
        for line in run.get("/logs", params={"since": cut.isoformat()}).text.splitlines()
    ]
    assert after == [e for e in everything if datetime.fromisoformat(e["ts"]) > cut][-200:]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert run.get("/logs", params={"since": future}).text == ""

    for params in (
        {"tail": 0},
        {"tail": 5001},
        {"tail": "many"},
        {"since": "yesterday"},
        {"since": "2026-01-01T00:00:00"},
    ):
        bad = run.get("/logs", params=params)
        assert bad.status_code == 400, params
        assert bad.json()["error"]["code"] == "bad_request"


def test_engine_refuses_calls_without_its_key(control_plane: StandIn, start_worker: Any) -> None:
    run = start_worker(control_plane.url)
    wait_ready(run)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(f"{run.engine_url}/v1/chat/completions", json=body).status_code == 401
    wrong = httpx.post(
        f"{run.engine_url}/v1/chat/completions", json=body, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    right = httpx.post(
        f"{run.engine_url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {ENGINE_KEY}"},
    )
    assert right.status_code == 200


def test_sigterm_drains_an_in_flight_stream(control_plane: StandIn, start_worker: Any) -> None:
    run = start_worker(control_plane.url, "--token-delay-ms", "100")
    wait_ready(run)
    engine = engine_process(run)
    chunks: list[str] = []
    first_chunk = threading.Event()

    def stream() -> None:
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": "hello"}],
            "max_tokens": 25,
            "stream": True,
        }
        with httpx.stream(
            "POST",
            f"{run.engine_url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {ENGINE_KEY}"},
            timeout=60,
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    chunks.append(line[6:])
                    first_chunk.set()

    reader = threading.Thread(target=stream)
    reader.start()
    assert first_chunk.wait(10)
    run.agent.proc.send_signal(signal.SIGTERM)
    reader.join(timeout=30)
    assert run.agent.proc.wait(timeout=60) in (0, -signal.SIGTERM)
    assert chunks[-1] == "[DONE]" and len(chunks) == 26  # every token arrived, then the end
    assert not engine.is_running() or engine.status() == psutil.STATUS_ZOMBIE
    phases = [b["phase"] for b in control_plane.heartbeats]
    assert "draining" in phases or "stopped" in phases
    events = [
        json.loads(line)["event"]
        for line in (run.state_dir / "worker-events.log").read_text().splitlines()
    ]
    assert events[-3:] == ["engine_stopped", "phase", "agent_stopped"]


def _events(run: WorkerRun) -> list[dict[str, Any]]:
    text = run.get("/logs", params={"tail": 5000}).text
    return [json.loads(line) for line in text.splitlines()]


def test_setup_command_runs_before_the_engine_and_registration(
    control_plane: StandIn, start_worker: Any
) -> None:
    setup = f"{sys.executable} -c 'import time; print(\"setting up\"); time.sleep(3)'"
    run = start_worker(control_plane.url, SETUP_COMMAND=setup)
    # The agent answers, but the host is still being set up: no engine, no registration.
    installing = run.get("/readyz").json()
    assert installing["phase"] == "installing"
    assert installing["reason"] == "running the setup command"
    assert control_plane.registrations == []
    assert not [
        p
        for p in psutil.Process(run.agent.proc.pid).children(recursive=True)
        if "mock_engine" in " ".join(p.cmdline())
    ]
    control_plane.wait_for(lambda b: b["phase"] == "ready")
    events = [e["event"] for e in _events(run)]
    assert events.index("setup_done") < events.index("registered")
    assert "setting up" in (run.state_dir / "setup.log").read_text()


def test_a_failing_setup_command_is_retried_and_never_registers(
    control_plane: StandIn, start_worker: Any
) -> None:
    run = start_worker(
        control_plane.url, SETUP_COMMAND=f"{sys.executable} -c 'import sys; sys.exit(3)'"
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        failures = [e for e in _events(run) if e["event"] == "setup_failed"]
        if len(failures) >= 2:
            break
        time.sleep(0.1)
    assert len(failures) >= 2 and failures[0]["exit_code"] == 3
    missing = start_worker(control_plane.url, SETUP_COMMAND="/nonexistent/setup --now")
    deadline = time.monotonic() + 10
    while not any(e["event"] == "setup_failed" for e in _events(missing)):
        assert time.monotonic() < deadline, _events(missing)
        time.sleep(0.1)
    assert missing.get("/healthz").status_code == 200  # the agent itself lives on
    assert control_plane.registrations == []
    ready = run.get("/readyz")
    assert ready.status_code == 503 and ready.json()["phase"] == "installing"
    # Between attempts it says why; during one, that it is running it again.
    assert ready.json()["reason"] in (
        "setup command failed (exit 3); retrying",
        "running the setup command",
    )
