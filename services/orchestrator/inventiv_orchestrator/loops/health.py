"""Health: walks every live instance forward (booting -> installing -> starting ->
ready) from what the provider, the worker's heartbeats and its /readyz say, and between
ready and unhealthy as heartbeats stop and resume. It also closes instances whose
server vanished and fails those that never became ready in time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import cast

import httpx
from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_common import actions
from inventiv_common.bus import commit_and_publish
from inventiv_common.db.models import Instance, Provider
from inventiv_common.lifecycle import InstanceStatus as S
from inventiv_common.providers.base import ProviderServer
from inventiv_common.transitions import log_action, record_step, transition
from inventiv_orchestrator.context import Context
from inventiv_orchestrator.loops.base import Loop

INSTANCES = cast(Table, Instance.__table__)
WATCHED = (S.booting, S.installing, S.starting, S.ready, S.unhealthy)
BATCH = 200
PROBE_TIMEOUT_S = 2.0


class HealthLoop(Loop):
    name = "health"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx.settings.loop_interval_s)
        self.ctx = ctx

    async def run_once(self) -> int:
        """One pass over every watched instance, in locked batches."""
        started = datetime.now(UTC)
        # One inventory call per provider per pass, not one lookup per instance.
        servers: dict[str, ProviderServer] = {}
        for provider in self.ctx.providers.values():
            servers.update((s.provider_id, s) for s in await provider.list_servers())
        total = 0
        while True:
            handled = await self._batch(started, servers)
            total += handled
            if handled < BATCH:
                return total

    async def _batch(self, pass_started: datetime, servers: dict[str, ProviderServer]) -> int:
        async with self.ctx.session_factory() as session:
            rows = (
                await session.execute(
                    select(Instance, Provider.code)
                    .join(Provider, Provider.id == Instance.provider_id)
                    .where(
                        Instance.status.in_([s.value for s in WATCHED]),
                        Instance.terminate_requested_at.is_(None),
                        # Not yet seen in this pass.
                        (Instance.last_processed_at.is_(None))
                        | (Instance.last_processed_at < pass_started),
                    )
                    .order_by(Instance.last_processed_at.asc().nulls_first())
                    .limit(BATCH)
                    .with_for_update(of=Instance, skip_locked=True)
                )
            ).all()
            facts = await asyncio.gather(*(self._observe(i, code, servers) for i, code in rows))
            for (instance, _), (server, reachable, ready) in zip(rows, facts, strict=True):
                await self._decide(session, instance, server, reachable, ready)
            if rows:
                # One statement marks the whole batch as seen (most rows change nothing
                # else, and a per-row versioned UPDATE would cost a round trip each).
                await session.execute(
                    update(INSTANCES)
                    .where(INSTANCES.c.id.in_([i.id for i, _ in rows]))
                    .values(last_processed_at=datetime.now(UTC))
                )
            await commit_and_publish(session, self.ctx.bus)
        return len(rows)

    async def _observe(
        self, instance: Instance, provider_code: str, servers: dict[str, ProviderServer]
    ) -> tuple[ProviderServer | None, bool, bool]:
        server = servers.get(instance.provider_instance_id or "")
        if server is None and instance.provider_instance_id:
            # Created after this pass's inventory, or really gone: ask for this one.
            server = await self.ctx.provider(provider_code).get(instance.provider_instance_id)
        if server is not None and server.running and server.details.get("runtime") == "simulated":
            # No process to probe: the (simulated) worker's heartbeats are the facts.
            return server, True, instance.worker_phase == "ready"
        if server is None or not server.running or not server.ip_address or not server.health_port:
            return server, False, False
        base = f"http://{server.ip_address}:{server.health_port}"
        try:
            reachable = (
                await self.ctx.http.get(f"{base}/healthz", timeout=PROBE_TIMEOUT_S)
            ).status_code == 200
            ready = (
                reachable
                and (await self.ctx.http.get(f"{base}/readyz", timeout=PROBE_TIMEOUT_S)).status_code
                == 200
            )
        except httpx.HTTPError:
            return server, False, False
        return server, reachable, ready

    def _heartbeat_fresh(self, instance: Instance, now: datetime) -> bool:
        settings = self.ctx.settings
        window = timedelta(
            seconds=settings.worker_heartbeat_interval_s * settings.worker_heartbeat_misses
        )
        return (
            instance.worker_last_heartbeat is not None
            and now - instance.worker_last_heartbeat <= window
        )

    async def _decide(
        self,
        session: AsyncSession,
        instance: Instance,
        server: ProviderServer | None,
        reachable: bool,
        ready: bool,
    ) -> None:
        now = datetime.now(UTC)
        status = S(instance.status)
        if server is None or server.status == "deleted":
            await self._server_gone(session, instance, status)
            return
        fresh = self._heartbeat_fresh(instance, now)
        phase = instance.worker_phase
        booting = status in (S.booting, S.installing, S.starting)
        if booting and now - instance.created_at > timedelta(
            seconds=self.ctx.settings.boot_timeout_s
        ):
            await transition(
                session,
                instance,
                S.failed,
                reason="not ready in time",
                error_code="boot_timeout",
                error_message=f"not ready within {self.ctx.settings.boot_timeout_s:.0f} s",
            )
            return
        if server.running:
            record_step(instance, "provider_running", now)
        if status is S.booting and reachable:
            await transition(
                session,
                instance,
                S.installing,
                reason="worker agent answers",
                step="worker_reachable",
            )
            status = S.installing
        # Registration, or any heartbeat since, sets worker_status.
        if status is S.installing and instance.worker_status is not None:
            await transition(
                session, instance, S.starting, reason="worker registered", step="agent_registered"
            )
            status = S.starting
        if status is S.starting:
            if phase in ("loading_model", "ready"):
                record_step(instance, "engine_started", now)
            if phase == "loading_model":
                record_step(instance, "model_loading", now)
            if ready and fresh and phase == "ready":
                record_step(instance, "engine_started", now)
                record_step(instance, "model_loading", now)
                await transition(session, instance, S.ready, reason="worker ready", step="ready")
            return
        if status is S.ready and not (fresh and ready):
            why = "heartbeats stopped" if not fresh else "worker not ready"
            await transition(session, instance, S.unhealthy, reason=why)
        elif status is S.unhealthy and fresh and ready:
            await transition(session, instance, S.ready, reason="worker recovered")

    async def _server_gone(self, session: AsyncSession, instance: Instance, status: S) -> None:
        reason = "the provider no longer has this server"
        log_action(
            session,
            instance,
            actions.ORPHAN_CLOSED,
            component="orchestrator",
            status="failed",
            error_code="server_gone",
            error_message=reason,
        )
        if status in (S.booting, S.installing, S.starting):
            await transition(
                session,
                instance,
                S.failed,
                reason=reason,
                error_code="server_gone",
                error_message=reason,
            )
        else:
            instance.error_code, instance.error_message = "server_gone", reason
            await transition(session, instance, S.terminating, reason=reason)
