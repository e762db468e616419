"""One load tool for every HTTP benchmark here: wrk (C, one thread, keep-alive), pinned
to its own core so it does not compete with the server it measures.

Only 2xx answers count as served: wrk's own Requests/sec counts every answer, a 500 as
much as a 200, and files 3xx with the successes. The script given to wrk counts each
answer by status and prints one summary line of its own, from which the rate is the
2xx answers over the run's duration; anything else, and every socket error, is a
failure the caller must report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SUMMARY_TAG = "loadgen-summary"
# wrk's "timeout" aborts nothing: an answer slower than it still arrives and is counted,
# but its latency is left out of the histogram (flattering the slower server) and the
# request is counted as a timeout on every check while it waits. A long limit keeps every
# answer a client would wait for in the latency figures; a timeout counted past it is a
# request stalled that long, a failure.
TIMEOUT_S = 30
SOCKET_ERRORS = ("connect", "read", "write", "timeout")


@dataclass
class LoadResult:
    ok: int  # 2xx answers
    duration_s: float
    latency_p50_ms: float
    latency_p99_ms: float
    other_statuses: dict[int, int] = field(default_factory=dict)  # non-2xx answers by status
    socket_errors: dict[str, int] = field(default_factory=dict)  # connect/read/write/timeout

    @property
    def requests_per_s(self) -> float:
        """Successful (2xx) answers per second; failures add nothing."""
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def errors(self) -> int:
        return sum(self.other_statuses.values()) + sum(self.socket_errors.values())

    def describe_errors(self) -> str:
        parts = [f"HTTP {status} x{n}" for status, n in sorted(self.other_statuses.items())]
        parts += [f"socket {kind} x{n}" for kind, n in self.socket_errors.items() if n]
        return ", ".join(parts) or "none"


# Each wrk thread runs its own copy of the script: response() counts in that thread's
# state, done() (in the main state) adds the threads' tables up through thread:get.
_COUNTING = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  local e = summary.errors
  io.write(string.format(
    "%s duration_us=%d requests=%d p50_us=%.1f p99_us=%.1f connect=%d read=%d write=%d timeout=%d",
    "TAG", summary.duration, summary.requests, latency:percentile(50),
    latency:percentile(99), e.connect, e.read, e.write, e.timeout))
  for status, n in pairs(counts) do io.write(string.format(" status_%d=%d", status, n)) end
  io.write("\\n")
end
""".replace("TAG", SUMMARY_TAG)


def _lua(method: str, body: dict | None, headers: dict[str, str]) -> str:
    lines = [f'wrk.method = "{method}"']
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(json.dumps(body))}")
        headers = {"Content-Type": "application/json", **headers}
    for name, value in headers.items():
        lines.append(f'wrk.headers["{name}"] = "{value}"')
    return "\n".join(lines) + "\n" + _COUNTING


def parse_summary(output: str, url: str) -> LoadResult:
    line = next((ln for ln in output.splitlines() if ln.startswith(SUMMARY_TAG)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no {SUMMARY_TAG} line for {url}:\n{output}")
    values = dict(item.split("=", 1) for item in line.split()[1:])
    statuses = {int(k.removeprefix("status_")): int(v) for k, v in values.items() if "status_" in k}
    if sum(statuses.values()) != int(values["requests"]):
        # Every answer wrk completed must have passed through response(): if not, the
        # counts below would silently leave some answers out.
        raise RuntimeError(f"wrk counted {values['requests']} answers, the script {statuses}")
    return LoadResult(
        ok=sum(n for status, n in statuses.items() if 200 <= status < 300),
        duration_s=int(values["duration_us"]) / 1e6,
        latency_p50_ms=float(values["p50_us"]) / 1000,
        latency_p99_ms=float(values["p99_us"]) / 1000,
        other_statuses={s: n for s, n in statuses.items() if not 200 <= s < 300},
        socket_errors={kind: int(values[kind]) for kind in SOCKET_ERRORS},
    )


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
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", f"--timeout={TIMEOUT_S}s"]
    command += ["-s", script.name, url]
    if cpu is not None and shutil.which("taskset") and (os.cpu_count() or 1) > cpu:
        command = ["taskset", "-c", str(cpu), *command]
    try:
        # wrk exits 1 when it cannot connect at all; its words are in the error raised.
        finished = subprocess.run(command, capture_output=True, text=True, check=False)
    finally:
        Path(script.name).unlink(missing_ok=True)
    return parse_summary(finished.stdout + finished.stderr, url)
