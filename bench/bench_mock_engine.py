"""The mock engine's own speed on one core, so gateway benchmarks know it is not their
bottleneck. The engine is pinned to core 0 and wrk to core 1.

Target: at least 5,000 non-streaming chat completions/s, which is more than twice the
gateway's own target (20 x ~110 req/s), so the engine never caps a gateway figure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import httpx

from bench.loadgen import wrk
from inventiv_common.net import free_port

TARGET_RPS = 5000.0
MODEL = "inventiv/mock-echo"


def main() -> None:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "inventiv_worker.mock_engine",
        "--port",
        str(port),
        "--model",
        MODEL,
    ]
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        command = ["taskset", "-c", "0", *command]
    engine = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        chat = {
            "model": MODEL,
            "messages": [{"role": "user", "content": "hello there"}],
            "max_tokens": 16,
        }
        cases = [
            ("GET /v1/models", "GET", "/v1/models", None),
            ("chat, JSON (16 tokens)", "POST", "/v1/chat/completions", chat),
            (
                "chat, SSE stream (16 tokens)",
                "POST",
                "/v1/chat/completions",
                {**chat, "stream": True},
            ),
            (
                "embeddings (384 dims)",
                "POST",
                "/v1/embeddings",
                {"model": MODEL, "input": "hello there"},
            ),
        ]
        print(
            "mock engine on one core, wrk 32 connections x 5 s "
            f"(target >= {TARGET_RPS:.0f} req/s for chat JSON)"
        )
        print(f"{'case':32} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        for name, method, path, body in cases:
            result = wrk(f"{url}{path}", method=method, body=body)
            print(
                f"{name:32} {result.requests_per_s:10.0f} {result.latency_p50_ms:8.2f} "
                f"{result.latency_p99_ms:8.2f} {result.errors:7d}"
            )
            if name.startswith("chat, JSON"):
                verdict = "meets" if result.requests_per_s >= TARGET_RPS else "MISSES"
                print(
                    f"{'':32} ratio to target: {result.requests_per_s / TARGET_RPS:.2f} ({verdict})"
                )
    finally:
        engine.terminate()
        engine.wait(timeout=20)
