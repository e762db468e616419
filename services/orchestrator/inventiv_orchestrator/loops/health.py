"""Health: walks every live instance forward (booting -> installing -> starting ->
ready) from what the provider, the worker's heartbeats and its /readyz say, and between
ready and unhealthy as heartbeats stop and resume. It also closes instances whose
server vanished and fails those that never became ready in time.

A pass looks only at instances that may need a decision: those coming up, ready ones
whose heartbeats went stale or report trouble, unhealthy ones beating again, and any
not looked at for HEALTH_SWEEP_INTERVAL_S, so a full sweep is spread over time instead
of repeated every pass. `sweep()` looks at all of them at once (CMD:RECONCILE).
Rows are read as plain tuples; only the few that change are loaded as ORM objects.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
from sqlalchemy import ColumnElement, Row, Table, and_, case, null, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_common import actions
from inventiv_common.actions import log_action
from inventiv_common.bus import commit_and_publish
from inventiv_common.db.models import Instance, Provider
from inventiv_common.lifecycle import InstanceStatus as S
from inventiv_common.providers.base import ProviderError, ProviderServer
from inventiv_orchestrator.context import Context
from inventiv_orchestrator.loops.base import Loop
from inventiv_orchestrator.transitions import record_step, transition

log = logging.getLogger(__name__)

INSTANCES = cast(Table, Instance.__table__)
WATCHED = (S.booting, S.installing, S.starting, S.ready, S.unhealthy)
COMING_UP = (S.booting, S.installing, S.starting)
BATCH = 500
PROBE_TIMEOUT_S = 2.0
SERVER_GONE = "the provider no longer has this server"
# What was seen of an instance: its server (None: gone), worker reachable, worker ready.
Observed = tuple[ProviderServer | None, bool, bool]


@dataclass(frozen=True)
class Move:
    """One thing to do to an instance: record a step, change state, or close it."""

    target: S | None = None
    reason: str = ""
    step: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    server_gone: bool = False


class Inventory:
    """The servers of the instances a pass looks at, asked of each provider in one
    call per batch (not one per server, nor the provider's whole inventory)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.servers: dict[str, ProviderServer] = {}
        self.unasked: set[str] = set()

    async def prepare(self, rows: list[Row[Any]]) -> None:
        # Per provider and organization: an organization may have an account of its own.
        wanted: dict[tuple[str, uuid.UUID], list[str]] = {}
        for row in rows:
            if row.provider_instance_id:
                key = (row.provider_code, row.organization_id)
                wanted.setdefault(key, []).append(row.provider_instance_id)
        for (code, organization_id), ids in wanted.items():
            try:
                provider = await self.ctx.provider_for(code, organization_id)
                found = await provider.get_many(ids)
            except (KeyError, ProviderError) as exc:
                # Not asked is not gone: these are judged when the provider answers.
                log.warning(
                    "servers not looked up this pass",
                    extra={"provider": code, "servers": len(ids), "error": str(exc)[:300]},
                )
                self.unasked.update(ids)
                continue
            self.servers.update((server.provider_id, server) for server in found)

    def server(self, server_id: str | None) -> ProviderServer | None:
        """The server as found by `prepare` (None: none, or the provider has it no more)."""
        return self.servers.get(server_id) if server_id else None


class HealthLoop(Loop):
    name = "health"
    min_gap_s = 0.2

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx.settings.loop_interval_s)
        self.ctx = ctx
        settings = ctx.settings
        self.heartbeat_window = timedelta(
            seconds=settings.worker_heartbeat_interval_s * settings.worker_heartbeat_misses
        )
        self._sweep_requested = False

    def request_sweep(self) -> None:
        """Make the next pass a full sweep (CMD:RECONCILE)."""
        self._sweep_requested = True
        self.wake()

    async def run_once(self) -> int:
        if self._sweep_requested:
            self._sweep_requested = False
            return await self.sweep()
        return await self._pass(self._needs_a_look(datetime.now(UTC)))

    async def sweep(self) -> int:
        """Every watched instance, now."""
        return await self._pass(true())

    def _needs_a_look(self, now: datetime) -> ColumnElement[bool]:
        c = INSTANCES.c
        stale_before = now - self.heartbeat_window
        swept_before = now - timedelta(seconds=self.ctx.settings.health_sweep_interval_s)
        return or_(
            c.status.in_([s.value for s in COMING_UP]),
            c.last_processed_at.is_(None),
            c.last_processed_at < swept_before,
            and_(
                c.status == S.ready.value,
                or_(
                    c.worker_last_heartbeat.is_(None),
                    c.worker_last_heartbeat < stale_before,
                    c.worker_phase.is_distinct_from("ready"),
                    c.worker_status.is_distinct_from("healthy"),
                ),
            ),
            and_(
                c.status == S.unhealthy.value,
                c.worker_last_heartbeat >= stale_before,
                c.worker_phase == "ready",
            ),
        )

    async def _pass(self, condition: ColumnElement[bool]) -> int:
        inventory = Inventory(self.ctx)
        total = 0
        after: uuid.UUID | None = None
        while True:
            rows = await self._read(condition, after)
            if rows:
                total += await self._judge(rows, inventory)
                after = rows[-1].id
            if len(rows) < BATCH:
                return total

    async def _read(
        self, condition: ColumnElement[bool], after: uuid.UUID | None
    ) -> list[Row[Any]]:
        """The next batch of the pass, by id, without locking it."""
        c = INSTANCES.c
        async with self.ctx.session_factory() as session:
            return list(
                await session.execute(
                    select(
                        c.id,
                        c.status,
                        c.organization_id,
                        c.provider_instance_id,
                        c.worker_phase,
                        c.worker_status,
                        c.worker_last_heartbeat,
                        c.created_at,
                        # Steps are recorded only while coming up; decoding the JSON of
                        # every settled row was most of a sweep's reading time.
                        case(
                            (c.status.in_([s.value for s in COMING_UP]), c.progress_steps),
                            else_=null(),
                        ).label("progress_steps"),
                        Provider.code.label("provider_code"),
                    )
                    .join(Provider, Provider.id == c.provider_id)
                    .where(
                        c.status.in_([s.value for s in WATCHED]),
                        c.terminate_requested_at.is_(None),
                        c.id > after if after is not None else true(),
                        condition,
                    )
                    .order_by(c.id)
                    .limit(BATCH)
                )
            )

    async def _judge(self, rows: list[Row[Any]], inventory: Inventory) -> int:
        """Observe a batch with no transaction open (probes can take seconds, and
        registrations or API writes must not wait on them), then lock only what is free
        and apply what the fresh rows call for. Returns how many were looked at."""
        c = INSTANCES.c
        await inventory.prepare(rows)
        looked_at = len(rows)
        rows = [row for row in rows if row.provider_instance_id not in inventory.unasked]
        observed = await self._observe_all(rows, inventory)
        now = datetime.now(UTC)
        changing = [row.id for row in rows if self.decide(row, *observed[row.id], now)]
        # Instances coming up are looked at every pass whatever their mark; settled ones
        # are marked, so the spread-out sweep comes back to them only when due. Rows
        # locked elsewhere are left for the next pass. (Locks are FOR NO KEY UPDATE:
        # see `claim`.)
        settled = [row.id for row in rows if S(row.status) not in COMING_UP]
        if settled:
            async with self.ctx.session_factory() as session:
                await session.execute(
                    update(INSTANCES)
                    .where(
                        c.id.in_(
                            select(c.id)
                            .where(c.id.in_(settled))
                            .with_for_update(skip_locked=True, key_share=True)
                            .scalar_subquery()
                        )
                    )
                    .values(last_processed_at=now)
                )
                await session.commit()
        if changing:
            await self._move(changing, observed, now)
        return looked_at

    async def _move(
        self,
        ids: list[uuid.UUID],
        observed: dict[uuid.UUID, Observed],
        now: datetime,
    ) -> None:
        async with self.ctx.session_factory() as session:
            instances = await session.scalars(
                select(Instance)
                .where(
                    Instance.id.in_(ids),
                    # Still ours to judge: not terminated or terminating meanwhile.
                    Instance.status.in_([s.value for s in WATCHED]),
                    Instance.terminate_requested_at.is_(None),
                )
                .with_for_update(skip_locked=True, key_share=True)
            )
            for instance in instances:
                # Decided again on the row as it is now, under its lock.
                moves = self.decide(instance, *observed[instance.id], now)
                _record_address(instance, observed[instance.id][0])
                self._apply(session, instance, moves, now)
            await commit_and_publish(session, self.ctx.bus)

    async def _observe_all(
        self, rows: list[Row[Any]], inventory: Inventory
    ) -> dict[uuid.UUID, Observed]:
        """What each instance's server and worker say. Only the rows whose worker must
        be probed over HTTP get a task of their own: thousands of tasks for answers
        already in hand cost more than the whole sweep."""
        observed: dict[uuid.UUID, Observed] = {}
        probed: list[tuple[uuid.UUID, ProviderServer]] = []
        for row in rows:
            server = inventory.server(row.provider_instance_id)
            if (
                server is not None
                and server.running
                and server.details.get("runtime") == "simulated"
            ):
                # No process to probe: the (simulated) worker's heartbeats are the facts.
                observed[row.id] = (server, True, row.worker_phase == "ready")
            elif (
                server is None
                or not server.running
                or not server.ip_address
                or not server.health_port
            ):
                observed[row.id] = (server, False, False)
            else:
                probed.append((row.id, server))
        facts = await asyncio.gather(*(self._probe(server) for _, server in probed))
        observed.update(zip((instance_id for instance_id, _ in probed), facts, strict=True))
        return observed

    async def _probe(self, server: ProviderServer) -> Observed:
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

    def decide(
        self,
        row: Row[Any] | Instance,
        server: ProviderServer | None,
        reachable: bool,
        ready: bool,
        now: datetime,
    ) -> list[Move]:
        """What to do with one instance given what was observed; nothing is written."""
        if server is None or server.status == "deleted":
            return [Move(server_gone=True)]
        status = S(row.status)
        boot_timeout_s = self.ctx.settings.boot_timeout_s
        if status in COMING_UP and now - row.created_at > timedelta(seconds=boot_timeout_s):
            return [
                Move(
                    S.failed,
                    "not ready in time",
                    error_code="boot_timeout",
                    error_message=f"not ready within {boot_timeout_s:.0f} s",
                )
            ]
        fresh = row.worker_last_heartbeat is not None and (
            now - row.worker_last_heartbeat <= self.heartbeat_window
        )
        phase = row.worker_phase
        coming_up = status in COMING_UP
        done = {entry.get("step") for entry in row.progress_steps or []} if coming_up else set()
        moves: list[Move] = []

        def step(name: str) -> None:
            # Progress steps tell how an instance came up; settled ones record none.
            if coming_up and name not in done:
                done.add(name)
                moves.append(Move(step=name))

        if server.running:
            step("provider_running")
        if status is S.booting and reachable:
            moves.append(Move(S.installing, "worker agent answers", step="worker_reachable"))
            status = S.installing
        # Registration, or any heartbeat since, sets worker_status.
        if status is S.installing and row.worker_status is not None:
            moves.append(Move(S.starting, "worker registered", step="agent_registered"))
            status = S.starting
        if status is S.starting:
            if phase in ("loading_model", "ready"):
                step("engine_started")
            if phase == "loading_model":
                step("model_loading")
            if ready and fresh and phase == "ready":
                step("model_loading")
                moves.append(Move(S.ready, "worker ready", step="ready"))
        elif status is S.ready and not (fresh and ready):
            moves.append(
                Move(S.unhealthy, "heartbeats stopped" if not fresh else "worker not ready")
            )
        elif status is S.unhealthy and fresh and ready:
            moves.append(Move(S.ready, "worker recovered"))
        return moves

    def _apply(
        self, session: AsyncSession, instance: Instance, moves: list[Move], now: datetime
    ) -> None:
        for move in moves:
            if move.server_gone:
                self._server_gone(session, instance)
            elif move.target is None:
                record_step(instance, str(move.step), now)
            else:
                transition(
                    session,
                    instance,
                    move.target,
                    reason=move.reason,
                    step=move.step,
                    error_code=move.error_code,
                    error_message=move.error_message,
                )

    def _server_gone(self, session: AsyncSession, instance: Instance) -> None:
        log_action(
            session,
            instance,
            actions.ORPHAN_CLOSED,
            component="orchestrator",
            status="failed",
            error_code="server_gone",
            error_message=SERVER_GONE,
        )
        if S(instance.status) in COMING_UP:
            transition(
                session,
                instance,
                S.failed,
                reason=SERVER_GONE,
                error_code="server_gone",
                error_message=SERVER_GONE,
            )
        else:
            instance.error_code, instance.error_message = "server_gone", SERVER_GONE
            transition(session, instance, S.terminating, reason=SERVER_GONE)


def _record_address(instance: Instance, server: ProviderServer | None) -> None:
    """A VM's public address is known once it runs (a cloud gives it at power-on, not
    at create): the gateway reaches the engine there."""
    if server is None or not server.running or not server.ip_address:
        return
    if instance.ip_address != server.ip_address:
        instance.ip_address = server.ip_address
    instance.worker_health_port = instance.worker_health_port or server.health_port
    instance.worker_engine_port = instance.worker_engine_port or server.engine_port
