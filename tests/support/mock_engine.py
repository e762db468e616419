"""The mock engine (an OpenAI-compatible stand-in for vLLM) as its own process."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai

from inventiv_common.net import free_port

MOCK_MODEL = "inventiv/mock-echo"


class MockEngineProcess:
    """The mock engine as its own process on a free loopback port."""

    def __init__(self, tmp_path: Path, *flags: str) -> None:
        self.port = free_port()
        self.log = (tmp_path / f"engine-{self.port}.log").open("wb")
        self.command = [
            sys.executable,
            "-m",
            "inventiv_worker.mock_engine",
            "--port",
            str(self.port),
            "--model",
            MOCK_MODEL,
            *flags,
        ]
        self.url = f"http://127.0.0.1:{self.port}"
        self._start()

    def _start(self) -> None:
        self.proc = subprocess.Popen(self.command, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/version", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("mock engine did not start")

    def client(self, key: str = "unused") -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0)

    def metric(self, name: str) -> float:
        """One counter or gauge of the engine's /metrics."""
        for line in httpx.get(f"{self.url}/metrics", timeout=5).text.splitlines():
            if line.startswith(f"vllm:{name}{{"):
                return float(line.rsplit(" ", 1)[1])
        raise KeyError(name)

    def restart(self) -> None:
        """Stop and start again on the same port (connections to it die)."""
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self._start()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self.log.close()
