"""Provisioning: create the server at the provider for every `provisioning` instance.

Retries with exponential backoff; after PROVISION_MAX_ATTEMPTS, or on an error the
provider calls final, the instance fails with the provider's reason. A provider out of
stock in the instance's zone is final for that zone only: a deployment that allowed
other zones moves to the next one offering the type and is tried again at once (see
zone_fallback.py); with none left it fails naming every zone found out of stock.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_common import actions, instance_secrets
from inventiv_common.actions import log_action
from inventiv_common.bus import commit_and_publish
from inventiv_common.db.models import Instance, InstanceType, InstanceVolume, Model, Provider, Zone
from inventiv_common.lifecycle import InstanceStatus as S
from inventiv_common.providers.base import (
    ProviderError,
    ProviderServer,
    ServerSpec,
)
from inventiv_orchestrator.context import Context
from inventiv_orchestrator.loops.base import Loop, claim
from inventiv_orchestrator.loops.zone_fallback import (
    Move,
    next_zones,
    out_of_stock,
    remember_tried,
    zones_tried,
)
from inventiv_orchestrator.transitions import record_step, transition

# Instances claimed per transaction, and transactions in flight. The creates of a batch
# run concurrently (a provider call is mostly waiting); the database work of the batch
# (claim, targets, results) costs a handful of statements, not a handful per instance.
BATCH = 32
PARALLEL_BATCHES = 2
MAX_PER_PASS = 2000
log = logging.getLogger(__name__)
# Where `_create` leaves the create's duration in the server's details.
CREATE_MS = "create_ms"


class Target(NamedTuple):
    """Where and what one instance's server is: read with the batch, in one query."""

    provider: str
    zone: str
    instance_type: str
    gpu_count: int
    model: str
    context_length: int
    data_volume_gb: int
    engine_args: dict[str, Any] | None
    requires_hf_token: bool


class ProvisioningLoop(Loop):
    name = "provisioning"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx.settings.loop_interval_s)
        self.ctx = ctx

    async def run_once(self) -> int:
        done: list[int] = []
        await asyncio.gather(*(self._work(done) for _ in range(PARALLEL_BATCHES)))
        return sum(done)

    async def _work(self, done: list[int]) -> None:
        # Every claimed instance leaves the claimable set (booting, failed, or waiting
        # for its retry time), so this ends when nothing is left.
        while sum(done) < MAX_PER_PASS:
            claimed = await self._batch()
            if not claimed:
                return
            done.append(claimed)

    async def _batch(self) -> int:
        async with self.ctx.session_factory() as session:
            instances = await claim(session, self._claimable(datetime.now(UTC)), BATCH)
            if not instances:
                return 0
            claimed = len(instances)
            if any(i.bootstrap_secret_hash is None for i in instances):
                # The secrets must be durable before any server carries them: a create
                # that succeeds but whose transaction dies would otherwise leave a server
                # with secrets nobody knows, which a retried create would find and keep.
                for instance in instances:
                    instance_secrets.ensure(instance, self.ctx.keyring)
                await session.commit()
                # The commit released the locks: take them again; rows another
                # orchestrator took meanwhile are its own now.
                instances = await claim(
                    session,
                    [
                        Instance.id.in_([i.id for i in instances]),
                        Instance.status == S.provisioning.value,
                    ],
                    BATCH,
                )
            targets = await self._targets(session, instances)
            outcomes = await asyncio.gather(*(self._create(i, targets[i.id]) for i in instances))
            moves = await next_zones(session, instances, outcomes)
            for instance, outcome in zip(instances, outcomes, strict=True):
                if isinstance(outcome, ProviderServer):
                    self._record(session, instance, targets[instance.id], outcome)
                else:
                    zone, move = targets[instance.id].zone, moves.get(instance.id)
                    self._failed_attempt(session, instance, outcome, zone, moving=bool(move))
                    if move is not None:
                        self._move(session, instance, zone, move, outcome)
            await self._track_volumes(session, instances, outcomes)
            await commit_and_publish(session, self.ctx.bus)
        return claimed

    @staticmethod
    def _claimable(now: datetime) -> list[ColumnElement[bool]]:
        return [
            Instance.status == S.provisioning.value,
            Instance.terminate_requested_at.is_(None),
            (Instance.next_attempt_at.is_(None)) | (Instance.next_attempt_at <= now),
        ]

    @staticmethod
    async def _targets(session: AsyncSession, instances: list[Instance]) -> dict[uuid.UUID, Target]:
        """instance id -> where and what to create, in one query."""
        rows = await session.execute(
            select(
                Instance.id,
                Provider.code,
                Zone.code,
                InstanceType.code,
                InstanceType.gpu_count,
                Model.model_id,
                Model.context_length,
                Model.data_volume_gb,
                Model.engine_args,
                Model.requires_hf_token,
            )
            .join(Provider, Provider.id == Instance.provider_id)
            .join(Zone, Zone.id == Instance.zone_id)
            .join(InstanceType, InstanceType.id == Instance.instance_type_id)
            .join(Model, Model.id == Instance.model_id)
            .where(Instance.id.in_([i.id for i in instances]))
        )
        return {row[0]: Target(*row[1:]) for row in rows}

    async def _create(self, instance: Instance, target: Target) -> ProviderServer | Exception:
        """The server made (with its volumes), or why it could not be."""
        settings = self.ctx.settings
        secrets = instance_secrets.open_secrets(instance, self.ctx.keyring)
        hf_token = settings.hf_token.get_secret_value() if settings.hf_token else None
        spec = ServerSpec(
            name=str(instance.id),
            zone=target.zone,
            instance_type=target.instance_type,
            model=target.model,
            control_plane_url=settings.worker_control_plane_url,
            bootstrap_secret=secrets.bootstrap_secret,
            engine_key=secrets.engine_key,
            heartbeat_interval_s=settings.worker_heartbeat_interval_s,
            data_volume_gb=target.data_volume_gb,
            gpu_count=max(1, target.gpu_count),
            max_model_len=target.context_length,
            engine_args=dict(target.engine_args or {}),
            hf_token=hf_token if target.requires_hf_token else None,
        )
        try:
            provider = await self.ctx.provider_for(target.provider, instance.organization_id)
            started = time.monotonic()
            server = await provider.create(spec)
            # How long the create took, for its action log.
            took = {**server.details, CREATE_MS: round((time.monotonic() - started) * 1000)}
            server = replace(server, details=took)
            if server.volumes:
                return server
            return replace(server, volumes=tuple(await provider.list_volumes(server.provider_id)))
        except (ProviderError, KeyError) as exc:
            return exc
        except Exception as exc:
            # One create's surprise must not undo what the rest of the batch recorded.
            log.exception("provider create raised", extra={"instance_id": str(instance.id)})
            return ProviderError(f"{type(exc).__name__}: {exc}", retryable=True)

    def _record(
        self,
        session: AsyncSession,
        instance: Instance,
        target: Target,
        server: ProviderServer,
    ) -> None:
        now = datetime.now(UTC)
        instance.last_processed_at = now
        instance.provider_instance_id = server.provider_id
        instance.ip_address = server.ip_address
        instance.worker_health_port = server.health_port
        instance.worker_engine_port = server.engine_port
        instance.provider_created_at = instance.provider_created_at or now
        instance.error_code = instance.error_message = None
        record_step(instance, "provider_create", now)
        # The provider's own steps (Scaleway's: volume, server, user data, power-on),
        # each with how long it took, then the create as a whole.
        steps = server.details.get("steps")
        for step in steps if isinstance(steps, list) else []:
            facts = dict(step)
            took = facts.pop("ms", None)
            log_action(
                session,
                instance,
                actions.PROVIDER_STEP,
                component="orchestrator",
                details={"provider": target.provider, **facts},
                duration_ms=took if isinstance(took, int) else None,
            )
        log_action(
            session,
            instance,
            actions.PROVIDER_CREATE,
            component="orchestrator",
            details={
                "provider": target.provider,
                "server": server.provider_id,
                "zone": target.zone,
            },
            duration_ms=_int_or_none(server.details.get(CREATE_MS)),
        )
        transition(
            session,
            instance,
            S.booting,
            reason="server created at the provider",
            step="provider_running" if server.running else None,
        )

    @staticmethod
    async def _track_volumes(
        session: AsyncSession,
        instances: list[Instance],
        outcomes: list[ProviderServer | Exception],
    ) -> None:
        rows = [
            {
                "instance_id": instance.id,
                "provider_id": instance.provider_id,
                "zone_code": volume.zone,
                "provider_volume_id": volume.provider_id,
                "name": volume.name,
                "volume_type": volume.volume_type,
                "size_gb": volume.size_gb,
                "is_boot": volume.name.endswith("-boot"),
            }
            for instance, outcome in zip(instances, outcomes, strict=True)
            if isinstance(outcome, ProviderServer)
            for volume in outcome.volumes
        ]
        if rows:
            # A retried create finds volumes already tracked: those are left as they are.
            # Parameters as a list: compiled once and cached (see the Mock provider).
            await session.execute(
                pg_insert(InstanceVolume).on_conflict_do_nothing(
                    constraint="uq_instance_volumes_provider_volume"
                ),
                rows,
            )

    def _failed_attempt(
        self,
        session: AsyncSession,
        instance: Instance,
        exc: Exception,
        zone: str,
        *,
        moving: bool = False,
    ) -> None:
        """Log the attempt; retry later, or fail, unless it moves to another zone."""
        settings = self.ctx.settings
        instance.attempt_count += 1
        instance.last_processed_at = datetime.now(UTC)
        retryable = getattr(exc, "retryable", False)
        message = str(exc)
        log_action(
            session,
            instance,
            actions.PROVIDER_CREATE_FAILED,
            component="orchestrator",
            status="failed",
            error_code=getattr(exc, "code", "provider_error"),
            error_message=message,
            details={"attempt": instance.attempt_count, "zone": zone},
        )
        if out_of_stock(exc):
            tried = remember_tried(instance, zone)
            message = f"out of stock in {', '.join(tried)}: {message}"
        if moving:
            return
        if retryable and instance.attempt_count < settings.provision_max_attempts:
            delay = settings.provision_retry_base_s * 2 ** (instance.attempt_count - 1)
            instance.next_attempt_at = datetime.now(UTC) + timedelta(seconds=delay)
            instance.error_code, instance.error_message = "provider_retrying", message
            return
        transition(
            session,
            instance,
            S.failed,
            reason="provider create failed",
            error_code="provider_create_failed",
            error_message=f"after {instance.attempt_count} attempt(s): {message}",
        )

    @staticmethod
    def _move(
        session: AsyncSession, instance: Instance, zone: str, move: Move, exc: Exception
    ) -> None:
        """Out of stock here, allowed elsewhere: the instance is still provisioning, in
        the next zone, with a fresh count of attempts and nothing to wait for."""
        log_action(
            session,
            instance,
            actions.PROVIDER_ZONE_FALLBACK,
            component="orchestrator",
            details={
                "from": zone,
                "to": move.zone,
                "skipped": list(move.skipped),
                "out_of_stock_in": zones_tried(instance, zone),
            },
            error_message=str(exc),
        )
        instance.zone_id = move.zone_id
        instance.fallback_zone_ids = move.remaining
        instance.attempt_count = 0
        instance.next_attempt_at = None
        instance.error_code = "provider_retrying"
        instance.error_message = f"out of stock in {zone}; trying {move.zone}"


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) else None
