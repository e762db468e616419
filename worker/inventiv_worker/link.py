"""The link to the control plane: register once, then heartbeat facts every interval.

Calls retry with capped exponential backoff and full jitter, so a fleet of workers
does not hammer a recovering control plane in step. The token the control plane
returns once is kept in the state directory, readable by the agent's user only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from inventiv_worker.config import WorkerConfig
from inventiv_worker.eventlog import EventLog

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
TOKEN_FILE = "worker_token"  # noqa: S105 - a file name


def backoff_delay(attempt: int, cap: float = BACKOFF_CAP_S) -> float:
    return random.uniform(0, min(cap, BACKOFF_BASE_S * 2**attempt))  # noqa: S311


class ControlPlaneLink:
    def __init__(
        self,
        config: WorkerConfig,
        events: EventLog,
        client: httpx.AsyncClient,
        report: Callable[[], dict[str, Any]],
        agent_info: dict[str, Any],
    ) -> None:
        self.config = config
        self.events = events
        self.client = client
        self.report = report
        self.agent_info = agent_info
        self.token_path: Path = config.state_dir / TOKEN_FILE
        self.token: str | None = self._load_token()
        self.heartbeats_sent = 0
        self.heartbeat_failures = 0
        self.last_heartbeat_at: datetime | None = None

    # -- token storage ----------------------------------------------------------
    def _load_token(self) -> str | None:
        with contextlib.suppress(OSError):
            token = self.token_path.read_text().strip()
            return token or None
        return None

    def _store_token(self, token: str) -> None:
        fd = os.open(self.token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            os.fchmod(fh.fileno(), 0o600)  # also when the file already existed
            fh.write(token)
        self.token = token

    def _forget_token(self) -> None:
        self.token = None
        with contextlib.suppress(FileNotFoundError):
            self.token_path.unlink()

    # -- calls ------------------------------------------------------------------
    async def register(self) -> bool:
        if not self.config.bootstrap_secret:
            self.events.record("register_skipped", reason="no bootstrap secret")
            return False
        body = {
            "instance_id": self.config.instance_id,
            "worker_id": self.config.worker_id,
            "model_id": self.config.model_id,
            "health_port": self.config.port,
            "engine_url": self.config.engine_url,
            **self.agent_info,
        }
        response = await self.client.post(
            f"{self.config.control_plane_url}/internal/worker/register",
            json=body,
            headers={"Authorization": f"Bearer {self.config.bootstrap_secret}"},
            timeout=10.0,
        )
        if response.status_code not in (200, 201):
            self.events.record("register_refused", status=response.status_code)
            return False
        token = response.json().get("token")
        if not isinstance(token, str) or not token:
            self.events.record("register_refused", status=response.status_code, reason="no token")
            return False
        self._store_token(token)
        self.events.record("registered")  # the token itself is never logged
        return True

    async def heartbeat(self, extra: dict[str, Any] | None = None) -> int:
        """Send one heartbeat; returns the HTTP status (401 drops the stored token)."""
        assert self.token is not None
        payload = {
            "instance_id": self.config.instance_id,
            "worker_id": self.config.worker_id,
            "model_id": self.config.model_id,
            "sent_at": datetime.now(UTC).isoformat(),
            **self.agent_info,
            **self.report(),
            **(extra or {}),
        }
        response = await self.client.post(
            f"{self.config.control_plane_url}/internal/worker/heartbeat",
            json=payload,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10.0,
        )
        if response.status_code == 401:
            self.events.record("heartbeat_unauthorized")
            self._forget_token()
        elif response.status_code < 300:
            self.heartbeats_sent += 1
            self.last_heartbeat_at = datetime.now(UTC)
        return response.status_code

    # -- loop -------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, wake: asyncio.Event) -> None:
        """Register when needed, heartbeat every interval or as soon as `wake` is set."""
        if not self.config.control_plane_url:
            self.events.record("link_disabled", reason="no CONTROL_PLANE_URL")
            return
        attempt = 0
        while not stop.is_set():
            delay = self.config.heartbeat_interval_s
            try:
                if self.token is None and not await self.register():
                    raise RuntimeError("registration failed")
                status = await self.heartbeat()
                if status >= 300:
                    raise RuntimeError(f"heartbeat answered {status}")
                attempt = 0
            except (httpx.HTTPError, RuntimeError, ValueError) as exc:
                self.heartbeat_failures += 1
                delay = backoff_delay(attempt, cap=max(self.config.heartbeat_interval_s, 1.0))
                attempt += 1
                self.events.record(
                    "control_plane_unreachable", error=str(exc)[:200], retry_in_s=round(delay, 2)
                )
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(stop, wake), timeout=delay)


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
