"""The worker agent as a real process, beside a real mock engine, registering and
heartbeating to the real orchestrator; what is checked is what the orchestrator stored."""

from __future__ import annotations

import contextlib
import json
import shlex
import signal
import stat
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.support.waiting import wait_until
from tests.worker.conftest import ENGINE_KEY, HERE, MODEL, StartWorker, WorkerRun
from tests.worker.control_plane import LiveOrchestrator

WALKED_UP = {("booting", "installing"), ("installing", "starting"), ("starting", "ready")}


def wait_ready(run: WorkerRun, timeout: float = 90.0) -> list[dict[str, Any]]:
    """Poll /readyz until 200; returns every answer seen on the way."""
    seen: list[dict[str, Any]] = []

    def ready() -> bool:
        response = run.get("/readyz")
        seen.append({"status": response.status_code, **response.json()})
        return response.status_code == 200

    try:
        wait_until(ready, timeout, "the agent's /readyz saying 200")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {seen[-3:]}\n{run.agent.output()[-2000:]}") from None
    return seen


def events(run: WorkerRun) -> list[dict[str, Any]]:
    text = run.get("/logs", params={"tail": 5000}).text
    return [json.loads(line) for line in text.splitlines()]


def engine_processes(run: WorkerRun) -> list[psutil.Process]:
    children = psutil.Process(run.agent.proc.pid).children(recursive=True)
    return [p for p in children if "mock_engine" in " ".join(p.cmdline())]


def serving(orchestrator: LiveOrchestrator, run: WorkerRun) -> dict[str, Any]:
    """The instance's row once the orchestrator calls it ready on a ready worker's word."""
    return orchestrator.wait_instance(
        run.instance_id,
        lambda row: row["status"] == "ready" and row["worker_phase"] == "ready",
        "the orchestrator calling the instance ready",
    )


def moves(orchestrator: LiveOrchestrator, run: WorkerRun) -> set[tuple[str, str]]:
    logged = orchestrator.actions(run.instance_id, "instance.status_changed")
    return {(row["instance_status_before"], row["instance_status_after"]) for row in logged}


def test_readiness_follows_model_loading(
    orchestrator: LiveOrchestrator, start_worker: StartWorker, tmp_path: Path
) -> None:
    # The engine loads its model until the test says it is done.
    loaded = tmp_path / "model-loaded"
    run = start_worker(orchestrator, "--loaded-when", str(loaded))
    loading = wait_until(
        lambda: (answer := run.get("/readyz")).json()["phase"] == "loading_model" and answer,
        90,
        "the agent saying the engine loads its model",
    )
    assert loading.status_code == 503 and loading.json()["ready"] is False

    def steps_of(row: dict[str, Any]) -> list[str]:
        return [entry["step"] for entry in row["progress_steps"]]

    row = orchestrator.wait_instance(
        run.instance_id,
        lambda row: row["worker_phase"] == "loading_model" and "model_loading" in steps_of(row),
        "the orchestrator recording that the model loads",
    )
    assert row["status"] == "starting" and "ready" not in steps_of(row)

    loaded.touch()
    seen = wait_ready(run)
    assert seen[-1] == {
        "status": 200,
        "ready": True,
        "phase": "ready",
        "reason": "engine serves the model",
    }
    phases = [e["phase"] for e in events(run) if e["event"] == "phase"]
    assert phases[-2:] == ["loading_model", "ready"], phases
    assert run.get("/healthz").json() == {"status": "ok"}

    steps = steps_of(serving(orchestrator, run))
    assert steps.index("worker_reachable") < steps.index("agent_registered")
    assert steps.index("agent_registered") < steps.index("engine_started") < steps.index("ready")
    assert moves(orchestrator, run) == WALKED_UP


def test_registers_once_then_heartbeats_with_metrics(
    orchestrator: LiveOrchestrator, start_worker: StartWorker
) -> None:
    run = start_worker(orchestrator)
    row = serving(orchestrator, run)
    info = run.get("/info").json()
    assert info["instance_id"] == str(run.instance_id) and info["model_id"] == MODEL
    assert len(info["agent_checksum"]) == 64 and info["engine_version"] == "mock-0.1"
    assert row["worker_agent_checksum"] == info["agent_checksum"]
    assert row["worker_agent_version"] == info["agent_version"]
    assert row["worker_version_mismatch"] is False
    assert row["worker_status"] == "healthy" and row["worker_queue_depth"] == 0
    assert row["worker_gpu_utilization"] is None  # no GPU here, and no error either

    samples = wait_until(
        lambda: orchestrator.rows(
            "SELECT * FROM system_samples WHERE instance_id = :id", id=run.instance_id
        ),
        60,
        "the heartbeats' system samples written",
    )
    assert all(s["memory_total_bytes"] > 0 and s["disk_total_bytes"] > 0 for s in samples)
    gpu_rows = orchestrator.rows(
        "SELECT * FROM gpu_samples WHERE instance_id = :id", id=run.instance_id
    )
    assert gpu_rows == []

    token_file = run.state_dir / "worker_token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    tokens = orchestrator.tokens(run.instance_id)
    assert len(tokens) == 1 and tokens[0]["revoked_at"] is None
    assert token_file.read_text().startswith(tokens[0]["token_prefix"])
    assert len(orchestrator.actions(run.instance_id, "worker.registered")) == 1
    assert run.instance is not None
    secrets = (run.instance.bootstrap_secret, token_file.read_text())
    assert not any(secret in run.agent.output() for secret in secrets)

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


def test_registers_again_once_its_token_is_revoked(
    orchestrator: LiveOrchestrator, start_worker: StartWorker
) -> None:
    run = start_worker(orchestrator)
    serving(orchestrator, run)
    assert run.instance is not None
    token_file = run.state_dir / "worker_token"
    first_token = token_file.read_text()
    # Another registration of the instance (its worker replaced, say) revokes the token
    # the agent holds: its next heartbeat is refused, and it registers again.
    info = run.get("/info").json()
    other = httpx.post(
        f"{orchestrator.url}/internal/worker/register",
        json={"instance_id": str(run.instance_id), "agent_checksum": info["agent_checksum"]},
        headers={"Authorization": f"Bearer {run.instance.bootstrap_secret}"},
        timeout=30,
    )
    assert other.status_code == 200, other.text

    def three_issued() -> list[dict[str, Any]] | None:
        tokens = orchestrator.tokens(run.instance_id)
        return tokens if len(tokens) == 3 else None

    tokens = wait_until(three_issued, 60, "the agent registering again once its token was revoked")
    live = [t["token_prefix"] for t in tokens if t["revoked_at"] is None]
    assert len(live) == 1 and live[0] == tokens[-1]["token_prefix"]

    def token_now() -> str:
        with contextlib.suppress(FileNotFoundError):
            return token_file.read_text()
        return ""

    held = wait_until(
        lambda: token_now().startswith(live[0]) and token_now(),
        60,
        "the agent keeping its new token",
    )
    assert held != first_token
    # Every heartbeat taken after that registration carried the new token.
    orchestrator.wait_instance(
        run.instance_id,
        lambda row: row["worker_last_heartbeat"] > tokens[-1]["created_at"],
        "heartbeats written with the new token",
    )
    names = [e["event"] for e in events(run)]
    assert "heartbeat_unauthorized" in names and names.count("registered") == 2


def test_the_orchestrator_sees_the_engine_go_and_come_back(
    orchestrator: LiveOrchestrator, start_worker: StartWorker, tmp_path: Path
) -> None:
    gate = tmp_path / "engine-may-start"
    gate.touch()
    run = start_worker(orchestrator, gate=gate)
    serving(orchestrator, run)
    [first] = engine_processes(run)
    gate.unlink()  # the engine that replaces it waits until the test lets it start
    first.kill()
    orchestrator.wait_instance(
        run.instance_id,
        lambda row: row["status"] == "unhealthy" and row["worker_phase"] == "starting",
        "the orchestrator calling the instance unhealthy while its engine is down",
    )
    gate.touch()
    serving(orchestrator, run)
    assert moves(orchestrator, run) >= {("ready", "unhealthy"), ("unhealthy", "ready")}

    assert [p.pid for p in engine_processes(run)] != [first.pid]
    assert "inventiv_worker_engine_restarts_total 1.0" in run.get("/metrics").text
    names = [e["event"] for e in events(run)]
    assert names.count("engine_started") == 2
    [exited] = [e for e in events(run) if e["event"] == "engine_exited"]
    assert exited["exit_code"] == -signal.SIGKILL


def test_logs_tail_since_and_bad_values(start_worker: StartWorker) -> None:
    run = start_worker(None)
    wait_ready(run)
    response = run.get("/logs", params={"tail": 2})
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    everything = events(run)
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


def test_engine_refuses_calls_without_its_key(start_worker: StartWorker) -> None:
    run = start_worker(None)
    wait_ready(run)
    url = f"{run.engine_url}/v1/chat/completions"
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(url, json=body, timeout=30).status_code == 401
    wrong = httpx.post(url, json=body, headers={"Authorization": "Bearer nope"}, timeout=30)
    assert wrong.status_code == 401
    key = {"Authorization": f"Bearer {ENGINE_KEY}"}
    right = httpx.post(url, json=body, headers=key, timeout=30)
    assert right.status_code == 200


def test_sigterm_drains_an_in_flight_stream(
    orchestrator: LiveOrchestrator, start_worker: StartWorker
) -> None:
    run = start_worker(orchestrator, "--token-delay-ms", "100")
    serving(orchestrator, run)
    [engine] = engine_processes(run)
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
    assert first_chunk.wait(60), "no token of the stream arrived"
    run.agent.proc.send_signal(signal.SIGTERM)
    reader.join(timeout=60)
    assert run.agent.proc.wait(timeout=90) in (0, -signal.SIGTERM)
    assert chunks[-1] == "[DONE]" and len(chunks) == 26  # every token arrived, then the end
    assert not engine.is_running() or engine.status() == psutil.STATUS_ZOMBIE
    # Its last heartbeat told the orchestrator it stopped on purpose.
    orchestrator.wait_instance(
        run.instance_id,
        lambda row: row["worker_phase"] == "stopped",
        "the agent's last heartbeat saying it stopped",
    )
    logged = (run.state_dir / "worker-events.log").read_text().splitlines()
    assert [json.loads(line)["event"] for line in logged][-3:] == [
        "engine_stopped",
        "phase",
        "agent_stopped",
    ]


def gated_command(gate: Path, *command: str) -> str:
    """`command`, run once the file `gate` exists (see gated_start.py)."""
    return shlex.join([sys.executable, str(HERE / "gated_start.py"), str(gate), *command])


def test_setup_command_runs_before_the_engine_and_registration(
    orchestrator: LiveOrchestrator, start_worker: StartWorker, tmp_path: Path
) -> None:
    gate = tmp_path / "setup-may-finish"
    setup = gated_command(gate, sys.executable, "-c", "print('setting up')")
    run = start_worker(orchestrator, SETUP_COMMAND=setup)
    # The agent answers, but its host is being set up: no engine, no registration.
    installing = wait_until(
        lambda: (
            (body := run.get("/readyz").json())["reason"] == "running the setup command" and body
        ),
        60,
        "the agent saying it runs the setup command",
    )
    assert installing["phase"] == "installing"
    row = orchestrator.wait_instance(
        run.instance_id,
        lambda row: row["status"] == "installing",
        "the orchestrator seeing the agent answer",
    )
    assert row["worker_status"] is None and orchestrator.tokens(run.instance_id) == []
    assert engine_processes(run) == []
    gate.touch()
    serving(orchestrator, run)
    names = [e["event"] for e in events(run)]
    assert names.index("setup_done") < names.index("registered")
    assert "setting up" in (run.state_dir / "setup.log").read_text()


def test_a_failing_setup_command_is_retried_and_never_registers(
    orchestrator: LiveOrchestrator, start_worker: StartWorker
) -> None:
    failing = start_worker(
        orchestrator, SETUP_COMMAND=f"{sys.executable} -c 'import sys; sys.exit(3)'"
    )

    def two_failures() -> list[dict[str, Any]] | None:
        found = [e for e in events(failing) if e["event"] == "setup_failed"]
        return found if len(found) >= 2 else None

    failures = wait_until(two_failures, 60, "two failed attempts of the setup command")
    assert failures[0]["exit_code"] == 3
    missing = start_worker(orchestrator, SETUP_COMMAND="/nonexistent/setup --now")
    wait_until(
        lambda: any(e["event"] == "setup_failed" for e in events(missing)),
        60,
        "a setup command that does not exist failing",
    )
    assert missing.get("/healthz").status_code == 200  # the agent itself lives on
    for run in (failing, missing):
        row = orchestrator.wait_instance(
            run.instance_id,
            lambda row: row["status"] == "installing",
            "the orchestrator seeing the agent answer",
        )
        assert row["worker_status"] is None and orchestrator.tokens(run.instance_id) == []
    ready = failing.get("/readyz")
    assert ready.status_code == 503 and ready.json()["phase"] == "installing"
    # Between attempts it says why; during one, that it is running it again.
    assert ready.json()["reason"] in (
        "setup command failed (exit 3); retrying",
        "running the setup command",
    )
