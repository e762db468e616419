"""One load tool for every HTTP benchmark here: wrk (C, one thread, keep-alive), pinned
to its own core so it does not compete with the server it measures."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class LoadResult:
    requests_per_s: float
    latency_p50_ms: float
    latency_p99_ms: float
    errors: int


def _lua(method: str, body: dict | None, headers: dict[str, str]) -> str:
    lines = [f'wrk.method = "{method}"']
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(json.dumps(body))}")
        headers = {"Content-Type": "application/json", **headers}
    for name, value in headers.items():
        lines.append(f'wrk.headers["{name}"] = "{value}"')
    # Count non-2xx answers, which wrk otherwise only summarizes.
    lines.append("done = function(summary, latency, requests) end")
    return "\n".join(lines) + "\n"


def _to_ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(
    url: str,
    *,
    method: str = "GET",
    body: dict | None = None,
    headers: dict[str, str] | None = None,
    connections: int = 32,
    duration_s: int = 5,
    cpu: int | None = 1,
) -> LoadResult:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk); `make bench` installs it")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_lua(method, body, headers or {}))
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--latency",
        "-s",
        script.name,
        url,
    ]
    if cpu is not None and shutil.which("taskset") and (os.cpu_count() or 1) > cpu:
        command = ["taskset", "-c", str(cpu), *command]
    try:
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        Path(script.name).unlink(missing_ok=True)
    try:
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
        p50 = _to_ms(re.search(r"50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
        p99 = _to_ms(re.search(r"99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    except AttributeError:
        raise RuntimeError(f"unreadable wrk output for {url}:\n{output}") from None
    errors_match = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = int(errors_match.group(1)) if errors_match else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return LoadResult(rps, p50, p99, errors)
