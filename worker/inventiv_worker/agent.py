"""The worker agent: `inventiv-worker`.

Endpoints: /healthz (the process lives), /readyz (the engine serves the expected
model), /metrics (Prometheus: system, GPUs, engine queues), /info (versions and ids),
/logs (the structured event log). Background: engine supervision and probing, and the
control-plane link. SIGTERM drains the engine before the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import uvicorn
from fastapi import FastAPI, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from inventiv_worker.config import ConfigError, WorkerConfig
from inventiv_worker.engine import EngineSupervisor
from inventiv_worker.eventlog import EventLog
from inventiv_worker.link import ControlPlaneLink, backoff_delay
from inventiv_worker.prometheus import render_metrics
from inventiv_worker.sampling import GpuSampler, system_sample
from inventiv_worker.version import build_info

log = logging.getLogger("inventiv_worker")
MAX_TAIL = 5000
SETUP_LOG = "setup.log"


class Agent:
    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.events = EventLog(config.state_dir, config.log_max_bytes, config.log_backups)
        self.client = httpx.AsyncClient()
        self.gpus = GpuSampler()
        self.engine = EngineSupervisor(config, self.events, self.client)
        self.info = build_info()
        self.link = ControlPlaneLink(
            config,
            self.events,
            self.client,
            report=self.report,
            agent_info={
                "agent_version": self.info["agent_version"],
                "agent_checksum": self.info["agent_checksum"],
                "agent_build_date": self.info["build_date"],
            },
        )
        self.stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._setup_process: asyncio.subprocess.Process | None = None
        self._stopping = False

    def report(self) -> dict[str, Any]:
        """The facts a heartbeat carries."""
        return {
            "phase": self.engine.state.phase.value,
            "engine": self.engine.state.as_report(),
            "system": system_sample(self.config.state_dir),
            "gpus": self.gpus.sample(),
        }

    async def start(self) -> None:
        self.events.record(
            "agent_started",
            agent_version=self.info["agent_version"],
            agent_checksum=self.info["agent_checksum"],
            instance_id=self.config.instance_id,
            model_id=self.config.model_id,
        )
        self._tasks = [asyncio.create_task(self._run())]

    async def _run(self) -> None:
        await self._setup()
        await asyncio.gather(
            self.engine.supervise(),
            self.engine.probe_forever(),
            self.link.run(self.stop, self.engine.changed),
        )

    async def _setup(self) -> None:
        """SETUP_COMMAND, until it succeeds; meanwhile the agent answers /healthz but
        neither starts the engine nor registers (the instance shows `installing`)."""
        command = self.config.setup_command
        attempt = 0
        while command and not self.stop.is_set():
            self.engine.state.reason = "running the setup command"
            started = time.monotonic()
            try:
                with (self.config.state_dir / SETUP_LOG).open("ab") as log_file:
                    self._setup_process = await asyncio.create_subprocess_exec(
                        *command, stdout=log_file, stderr=asyncio.subprocess.STDOUT
                    )
                code: int | str = await self._setup_process.wait()
            except OSError as exc:  # not found, not executable: said, then retried
                code = exc.strerror or type(exc).__name__
            elapsed = round(time.monotonic() - started, 3)
            if self._stopping:
                return  # stopped under it by shutdown(): not a failure
            if code == 0:
                self.events.record("setup_done", duration_s=elapsed)
                return
            self.events.record("setup_failed", exit_code=code, duration_s=elapsed)
            self.engine.state.reason = f"setup command failed (exit {code}); retrying"
            await asyncio.sleep(backoff_delay(attempt, cap=self.config.restart_backoff_max_s))
            attempt += 1

    async def shutdown(self) -> None:
        self.events.record("agent_stopping")
        self._stopping = True
        setup = self._setup_process
        if setup is not None and setup.returncode is None:
            setup.terminate()  # the agent stops before its host was ever set up
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(setup.wait(), timeout=5)
            if setup.returncode is None:
                setup.kill()
        await self.engine.drain_and_stop()
        # One last word to the control plane: this worker is gone on purpose.
        if self.link.token is not None and self.config.control_plane_url:
            with contextlib.suppress(httpx.HTTPError):
                await self.link.heartbeat()
        self.stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.client.aclose()
        self.events.record("agent_stopped")


def create_app(config: WorkerConfig) -> FastAPI:
    agent = Agent(config)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await agent.start()
        try:
            yield
        finally:
            await agent.shutdown()

    app = FastAPI(title="inventiv-worker", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.agent = agent

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        state = agent.engine.state
        body = {"ready": state.ready, "phase": state.phase.value, "reason": state.reason}
        return JSONResponse(body, status_code=200 if state.ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        text, content_type = render_metrics(agent)
        return Response(text, media_type=content_type)

    @app.get("/info")
    async def info() -> dict[str, Any]:
        return {
            **agent.info,
            "worker_id": config.worker_id,
            "instance_id": config.instance_id,
            "model_id": config.model_id,
            "engine_url": config.engine_url,
            "engine_version": agent.engine.state.engine_version,
            "phase": agent.engine.state.phase.value,
        }

    @app.get("/logs")
    async def logs(
        tail: Annotated[int, Query(ge=1, le=MAX_TAIL)] = 200,
        since: datetime | None = None,
    ) -> Response:
        if since is not None and since.tzinfo is None:
            return JSONResponse(
                {"error": {"code": "bad_request", "message": "since needs a timezone (e.g. Z)"}},
                status_code=400,
            )
        events = agent.events.read(tail, since)
        body = "".join(_json_line(e) for e in events)
        return Response(body, media_type="application/x-ndjson")

    @app.exception_handler(Exception)
    async def _unexpected(_request: Any, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse({"error": {"code": "internal_error", "message": "internal error"}}, 500)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Any, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:])
        return JSONResponse(
            {"error": {"code": "bad_request", "message": f"{where}: {first.get('msg')}"}},
            status_code=400,
        )

    return app


def _json_line(event: dict[str, Any]) -> str:
    return json.dumps(event, default=str) + "\n"


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": "inventiv-worker",
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    # Every probe is an HTTP call; httpx would log each one at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def main() -> None:
    _setup_logging()
    try:
        config = WorkerConfig.from_env()
    except ConfigError as exc:
        print(f"inventiv-worker: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    uvicorn.run(
        create_app(config),
        host=config.host,
        port=config.port,
        log_level="warning",
        # Draining can take up to DRAIN_TIMEOUT_S; uvicorn must not cut it short.
        timeout_graceful_shutdown=int(config.drain_timeout_s) + 30,
    )


if __name__ == "__main__":
    main()
