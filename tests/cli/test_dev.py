"""`inventiv dev` with nothing configured: embedded PostgreSQL and Redis, three services."""

from __future__ import annotations

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

from tests.support import clean_env, free_port


class DevRun:
    def __init__(self, home: Path, ports: dict[str, int]) -> None:
        self.home = home
        self.ports = ports
        env = clean_env(
            INVENTIV_HOME=str(home),
            API_PORT=str(ports["api"]),
            ORCHESTRATOR_PORT=str(ports["orchestrator"]),
            FINOPS_PORT=str(ports["finops"]),
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

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        stacks = ""
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)  # where is it stuck?
            time.sleep(1)
            stacks = (self.home / "dev-stacks.txt").read_text()
            self.proc.kill()
            self.proc.wait()
            code = None
        while not self._queue.empty():
            self.lines.append(self._queue.get())
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
