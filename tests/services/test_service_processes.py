"""Each service as a real uvicorn process against the real PostgreSQL and Redis."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from inventiv_common.net import free_port
from tests.support.processes import ServiceProcess, clean_env
from tests.support.redis_servers import REDIS_URL
from tests.support.waiting import wait_until

# uvicorn shuts down cleanly, then re-raises the signal so the exit status tells
# what stopped it: -SIGTERM (143 in a shell) is the normal end of a service.
GRACEFUL_EXIT = (0, -signal.SIGTERM)

SERVICES = [
    ("inventiv_api", "API_PORT"),
    ("inventiv_orchestrator", "ORCHESTRATOR_PORT"),
    ("inventiv_finops", "FINOPS_PORT"),
]


def service_env(database_url: str, port_env: str, port: int, **extra: str) -> dict[str, str]:
    return clean_env(
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
        REDIS_CHANNEL_PREFIX=f"test-{uuid.uuid4().hex[:8]}:",
        INVENTIV_ENV="dev",
        **{port_env: str(port)},
        **extra,
    )


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    processes: list[ServiceProcess] = []
    yield processes
    for proc in processes:
        proc.stop()


@pytest.mark.parametrize(("module", "port_env"), SERVICES)
def test_service_answers_health_endpoints_and_stops_gracefully(
    module: str, port_env: str, database_url: str, tmp_path: Path, started: list[ServiceProcess]
) -> None:
    port = free_port()
    proc = ServiceProcess(
        module, port, service_env(database_url, port_env, port), tmp_path / "service.log"
    )
    started.append(proc)
    proc.wait_ready()
    base = proc.base_url

    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{base}/readyz").json()
    assert ready == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}
    version = httpx.get(f"{base}/version").json()
    assert set(version) == {"backend_version", "build_time"}
    metrics = httpx.get(f"{base}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    counted = re.search(
        r'^http_requests_total\{method="GET",route="/readyz",status="200"\} (\d+)\.0$',
        metrics.text,
        re.MULTILINE,
    )
    assert counted is not None and int(counted.group(1)) >= 2  # wait_ready's and ours

    assert proc.stop() in GRACEFUL_EXIT
    log_lines = [line for line in proc.output().splitlines() if line.strip()]
    entries = [json.loads(line) for line in log_lines]  # every line is JSON
    assert {e["service"] for e in entries} == {module.replace("_", "-")}
    messages = [e["msg"] for e in entries]
    assert messages.index("service stopped") < messages.index("Application shutdown complete.")


def test_api_serves_docs_and_version_alias(
    database_url: str, tmp_path: Path, started: list[ServiceProcess]
) -> None:
    port = free_port()
    proc = ServiceProcess(
        "inventiv_api", port, service_env(database_url, "API_PORT", port), tmp_path / "api.log"
    )
    started.append(proc)
    proc.wait_ready()
    assert (
        httpx.get(f"{proc.base_url}/api/version").json()
        == httpx.get(f"{proc.base_url}/version").json()
    )
    spec = httpx.get(f"{proc.base_url}/api-docs/openapi.json").json()
    assert spec["info"]["title"] == "inventiv-api"
    assert "/readyz" in spec["paths"]
    swagger = httpx.get(f"{proc.base_url}/swagger-ui")
    assert swagger.status_code == 200
    assert "/api-docs/openapi.json" in swagger.text


def test_orchestrator_status_reports_its_bus_subscription(
    database_url: str, tmp_path: Path, started: list[ServiceProcess]
) -> None:
    port = free_port()
    proc = ServiceProcess(
        "inventiv_orchestrator",
        port,
        service_env(database_url, "ORCHESTRATOR_PORT", port),
        tmp_path / "orch.log",
    )
    started.append(proc)
    proc.wait_ready()

    def subscribed() -> dict | None:
        status = httpx.get(f"{proc.base_url}/admin/status").json()
        return status if status["bus"]["subscribed"] else None

    status = wait_until(subscribed, 60, "the orchestrator subscribed to the bus")
    assert status["bus"]["subscribed"] is True
    assert status["bus"]["channels"] == ["orchestrator_events"]
    assert status["dependencies"] == {"database": "ok", "redis": "ok"}


def test_finops_status_reports_its_loop_and_subscription(
    database_url: str, tmp_path: Path, started: list[ServiceProcess]
) -> None:
    port = free_port()
    proc = ServiceProcess(
        "inventiv_finops", port, service_env(database_url, "FINOPS_PORT", port), tmp_path / "f.log"
    )
    started.append(proc)
    proc.wait_ready()

    def passed() -> dict | None:
        status = httpx.get(f"{proc.base_url}/admin/status").json()
        return status if status["loops"].get("finops", {}).get("passes") else None

    status = wait_until(passed, 60, "the finops loop's first pass")
    assert status["service"] == "inventiv-finops"
    assert status["bus"]["channels"] == ["finops_events"]
    assert status["loops"]["finops"]["passes"] >= 1
    assert status["loops"]["finops"]["last_error"] is None


def test_two_apis_booting_at_once_on_a_fresh_database_both_get_ready(
    empty_database_url: str, tmp_path: Path, started: list[ServiceProcess]
) -> None:
    for i in range(2):
        port = free_port()
        env = service_env(
            empty_database_url, "API_PORT", port, AUTO_SEED_CATALOG="1", DEFAULT_ADMIN_PASSWORD="pw"
        )
        started.append(ServiceProcess("inventiv_api", port, env, tmp_path / f"api{i}.log"))
    for proc in started:
        proc.wait_ready()
    for proc in started:
        assert proc.stop() in GRACEFUL_EXIT
    assert sum("admin bootstrapped" in p.output() for p in started) == 1


def test_finops_is_not_ready_until_the_schema_is_migrated(
    empty_database_url: str, tmp_path: Path, started: list[ServiceProcess]
) -> None:
    port = free_port()
    proc = ServiceProcess(
        "inventiv_finops",
        port,
        service_env(empty_database_url, "FINOPS_PORT", port),
        tmp_path / "finops.log",
    )
    started.append(proc)
    proc.wait_ready("/healthz")
    response = httpx.get(f"{proc.base_url}/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"].startswith("schema at None")


def test_readiness_fails_when_redis_is_unreachable(
    database_url: str, tmp_path: Path, started: list[ServiceProcess]
) -> None:
    port = free_port()
    env = service_env(database_url, "FINOPS_PORT", port)
    env["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    proc = ServiceProcess("inventiv_finops", port, env, tmp_path / "finops.log")
    started.append(proc)
    proc.wait_ready("/healthz")
    response = httpx.get(f"{proc.base_url}/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "ok"
    assert response.json()["checks"]["redis"] != "ok"


def test_port_in_use_is_one_line_naming_the_port(database_url: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "inventiv_orchestrator"],
            env=service_env(database_url, "ORCHESTRATOR_PORT", port),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"inventiv-orchestrator: port {port} on 127.0.0.1 is already in use "
        "(set ORCHESTRATOR_PORT to another port)"
    )


def test_sigint_also_stops_gracefully(
    database_url: str, tmp_path: Path, started: list[ServiceProcess]
) -> None:
    port = free_port()
    proc = ServiceProcess(
        "inventiv_finops", port, service_env(database_url, "FINOPS_PORT", port), tmp_path / "f.log"
    )
    proc.wait_ready()
    proc.proc.send_signal(signal.SIGINT)
    assert proc.proc.wait(timeout=20) in (0, -signal.SIGINT)
    proc.stop()
    assert "service stopped" in proc.output()
