"""Services started as real processes, with an environment that points nowhere else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from tests.support.addresses import closed_url, own_home

# Inherited values that would point a child at somebody else's state or traffic.
INHERITED_BUT_NOT_OURS = frozenset(
    {"INVENTIV_ENV", "JWT_SECRET", "INVENTIV_HOME", "METER_JOURNAL_DIR", "REDIS_CHANNEL_PREFIX"}
)


def clean_env(**overrides: str) -> dict[str, str]:
    """The process environment without anything that would point a child elsewhere.

    INVENTIV_HOME defaults to a new directory of the test's own: the default,
    `.inventiv/` of the working directory, is where a `make dev` beside the tests keeps
    its `dev.env`, which every operator command reads."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_URL", "_FILE", "_PORT")) and k not in INHERITED_BUT_NOT_OURS
    }
    env["INVENTIV_HOME"] = own_home()
    # Small pools: two test runs side by side share one PostgreSQL (100 connections by
    # default), and each test starts several services.
    env["DB_POOL_SIZE"] = "5"
    env.update(overrides)
    return env


def without_fixed_addresses(env: Mapping[str, str]) -> dict[str, str]:
    """`env`, with a closed address for each peer the test did not name: the defaults
    (the orchestrator on :8001, the api on :8003) reach whatever runs there, and
    Scaleway's own API would be asked about the test's credentials."""
    return {
        "ORCHESTRATOR_URL": closed_url(),
        "WORKER_CONTROL_PLANE_URL": closed_url(),
        "SCALEWAY_API_URL": closed_url(),
        **env,
    }


class ServiceProcess:
    """A service started as a real process (`python -m MODULE`), output kept in a file."""

    def __init__(self, module: str, port: int, env: Mapping[str, str], log_path: Path) -> None:
        self.module = module
        self.port = port
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module],
            env=without_fixed_addresses(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, path: str = "/readyz", timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.module} exited {self.proc.returncode}:\n{self.output()}"
                )
            try:
                if httpx.get(self.base_url + path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.module} not ready in {timeout}s:\n{self.output()}")

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode
