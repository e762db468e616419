"""`inventiv dev` with nothing configured: embedded PostgreSQL and Redis, three services."""

from __future__ import annotations

import contextlib
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from inventiv_common.net import free_port
from tests.support.processes import clean_env
from tests.support.waiting import wait_until


class DevRun:
    def __init__(self, home: Path, ports: dict[str, int], **extra_env: str) -> None:
        self.home = home
        self.ports = ports
        env = clean_env(
            INVENTIV_HOME=str(home),
            API_PORT=str(ports["api"]),
            ORCHESTRATOR_PORT=str(ports["orchestrator"]),
            FINOPS_PORT=str(ports["finops"]),
            **extra_env,
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "inventiv_common.cli", "dev"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))

    def wait_for_line(self, needle: str, timeout: float = 120.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.lines.append(line)
            if needle in line:
                return line
        raise AssertionError(f"never saw {needle!r}:\n" + "\n".join(self.lines[-60:]))

    def drain(self) -> list[str]:
        """Every line printed so far."""
        while not self._queue.empty():
            self.lines.append(self._queue.get())
        return self.lines

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        stacks = ""
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)  # where is it stuck?
            dump = self.home / "dev-stacks.txt"
            with contextlib.suppress(AssertionError):  # the failure below says the rest
                wait_until(dump.exists, 10, "the stacks of a `dev` that would not stop")
            stacks = dump.read_text() if dump.exists() else "(no stacks written)"
            self.proc.kill()
            self.proc.wait()
            code = None
        self.drain()
        assert code is not None, (
            "did not stop within 60 s:\n" + "\n".join(self.lines[-80:]) + "\n" + stacks
        )
        return code


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def dev_home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_dev_runs_the_platform_on_embedded_services_and_stops_it(dev_home: Path) -> None:
    ports = {name: free_port() for name in ("api", "orchestrator", "finops")}
    run = DevRun(dev_home, ports)
    try:
        run.wait_for_line("all services ready")
        for name, port in ports.items():
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            assert ready.status_code == 200, name
            assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
        admin_line = run.wait_for_line("admin login")
        children = psutil.Process(run.proc.pid).children(recursive=True)
    finally:
        code = run.stop()
    assert code == 0

    # The generated admin password is printed once and kept in a private file.
    password_file = dev_home / "secrets" / "default_admin_password"
    password = password_file.read_text().strip()
    assert f"admin / {password}" in admin_line
    assert password_file.stat().st_mode & 0o777 == 0o600
    # Embedded PostgreSQL (unix socket) and Redis were used, with data under the home.
    assert any("PostgreSQL: embedded" in line for line in run.lines)
    assert any("Redis: embedded" in line for line in run.lines)
    assert (dev_home / "pgdata" / "PG_VERSION").exists()
    # Each service's log lines carry its name.
    assert {
        p
        for p in ("[api] ", "[orchestrator] ", "[finops] ")
        if any(line.startswith(p) for line in run.lines)
    } == {"[api] ", "[orchestrator] ", "[finops] "}
    # Nothing is left running: services, PostgreSQL and Redis are gone.
    assert not any(_port_open(port) for port in ports.values())
    assert not [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    # A second start reuses the data and the secrets, and does not print the password.
    again = DevRun(dev_home, ports)
    try:
        again.wait_for_line("all services ready")
        line = again.wait_for_line("admin login")
    finally:
        assert again.stop() == 0
    assert password not in line
    assert str(password_file) in line


def test_dev_names_a_busy_port_in_one_line(dev_home: Path) -> None:
    ports = {name: free_port() for name in ("api", "orchestrator", "finops")}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports["finops"]))
        holder.listen()
        run = DevRun(dev_home, ports)
        code = run.stop() if run.proc.wait(timeout=60) is not None else None
    assert code == 2
    assert run.lines == [
        f"inventiv dev: port {ports['finops']} on 127.0.0.1 is already in use "
        "(set FINOPS_PORT to another port)"
    ]


def test_operator_commands_beside_dev_need_nothing_exported(dev_home: Path) -> None:
    """From another shell, with only the dev home known, the Mock runtime commands reach
    the embedded database, open the instance's secrets with the generated key and point
    a re-attached worker at the api wherever API_PORT put it."""
    ports = {name: free_port() for name in ("api", "orchestrator", "finops")}
    run = DevRun(dev_home, ports, WORKER_HEARTBEAT_INTERVAL_S="0.5", LOOP_INTERVAL_S="0.3")
    instance_id = ""

    def inventiv(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "inventiv_common.cli", *args],
            env=clean_env(INVENTIV_HOME=str(dev_home)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    try:
        run.wait_for_line("all services ready")
        shared = dev_home / "dev.env"
        assert shared.stat().st_mode & 0o777 == 0o600
        password = (dev_home / "secrets" / "default_admin_password").read_text().strip()
        key = (dev_home / "secrets" / "provider_settings_key").read_text().strip()
        # Addresses and file paths only: no secret's value is written down.
        assert password not in shared.read_text()
        assert key not in shared.read_text()
        assert inventiv("mock-runtimes").strip().endswith("0 mock server(s)")

        base = f"http://127.0.0.1:{ports['api']}"
        with httpx.Client(base_url=base, headers={"Origin": base}, timeout=10) as api:
            assert api.post(
                "/auth/login", json={"username": "admin", "password": password}
            ).is_success
            model = next(
                m for m in api.get("/models").json() if m["model_id"] == "inventiv/mock-echo"
            )
            offer = next(t for t in api.get("/instance_types").json() if t["code"] == "MOCK-GPU-S")
            zone = api.get(f"/instance_types/{offer['id']}/zones").json()[0]
            deployed = api.post(
                "/deployments",
                json={
                    "model_id": model["id"],
                    "zone_id": zone["id"],
                    "instance_type_id": offer["id"],
                },
            )
            assert deployed.status_code == 202, deployed.text
            instance_id = deployed.json()["id"]

            def wait_status(status: str) -> None:
                deadline = time.monotonic() + 60
                while api.get(f"/instances/{instance_id}").json()["status"] != status:
                    assert time.monotonic() < deadline, f"never {status}: " + "\n".join(
                        run.drain()[-40:]
                    )
                    time.sleep(0.2)

            wait_status("ready")
            assert instance_id in inventiv("mock-runtimes")
            assert "detached" in inventiv("worker-detach", instance_id)
            wait_status("unhealthy")
            assert "attached" in inventiv("worker-attach", instance_id)
            wait_status("ready")
            assert api.delete(f"/instances/{instance_id}").status_code == 202
            wait_status("terminated")
    finally:
        assert run.stop() == 0
    assert not (dev_home / "dev.env").exists()
    leftovers = [
        p.pid
        for p in psutil.process_iter(["environ"])
        if (p.info.get("environ") or {}).get("INSTANCE_ID") == instance_id
    ]
    assert instance_id and leftovers == []


def _service_process(run: DevRun, module: str, not_in: set[int], timeout: float = 60.0):
    """The running child of `inventiv dev` that runs `module`, other than those seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(run.proc.pid).children():
            try:
                if module in child.cmdline() and child.pid not in not_in:
                    return child
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.05)
    raise AssertionError(f"no new {module} process:\n" + "\n".join(run.drain()[-40:]))


def test_dev_restarts_a_dead_service_and_stops_only_when_it_keeps_crashing(
    dev_home: Path,
) -> None:
    from inventiv_common.cli.dev import MAX_CRASHES

    ports = {name: free_port() for name in ("api", "orchestrator", "finops")}
    run = DevRun(dev_home, ports)
    try:
        run.wait_for_line("all services ready")
        api = _service_process(run, "inventiv_api", set())
        first = _service_process(run, "inventiv_orchestrator", set())
        first.kill()
        run.wait_for_line("orchestrator exited with code -9; restarting it in")
        second = _service_process(run, "inventiv_orchestrator", {first.pid})
        orchestrator = f"http://127.0.0.1:{ports['orchestrator']}/readyz"

        def orchestrator_ready() -> bool:
            try:
                return httpx.get(orchestrator, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(orchestrator_ready, 60, "the restarted orchestrator ready")
        # The others were never touched.
        assert api.is_running() and run.proc.poll() is None

        # One that dies each time it starts is given up, and the platform stops.
        seen = {first.pid, second.pid}
        second.kill()
        for _ in range(MAX_CRASHES - 1):
            again = _service_process(run, "inventiv_orchestrator", seen)
            seen.add(again.pid)
            again.kill()
        run.wait_for_line(f"its {MAX_CRASHES + 1}th crash")
        code = run.proc.wait(timeout=60)
    finally:
        run.stop()
    assert code == 1
    lines = run.drain()
    assert sum(line.removeprefix("[inventiv] ") == "restarting orchestrator" for line in lines) == (
        MAX_CRASHES
    )
