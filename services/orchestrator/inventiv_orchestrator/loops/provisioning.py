"""Provisioning: create the server at the provider for every `provisioning` instance.

Retries with exponential backoff; after PROVISION_MAX_ATTEMPTS, or on an error the
provider calls final, the instance fails with the provider's reason.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_common import actions, instance_secrets
from inventiv_common.bus import commit_and_publish
from inventiv_common.db.models import Instance, InstanceType, InstanceVolume, Model, Provider, Zone
from inventiv_common.lifecycle import InstanceStatus as S
from inventiv_common.providers.base import ProviderError, ServerSpec
from inventiv_common.transitions import log_action, record_step, transition
from inventiv_orchestrator.context import Context
from inventiv_orchestrator.loops.base import Loop, claim_one

BATCH = 200
CONCURRENCY = 8


class ProvisioningLoop(Loop):
    name = "provisioning"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx.settings.loop_interval_s)
        self.ctx = ctx

    async def run_once(self) -> int:
        # Several creates at once: a provider call is mostly waiting. SKIP LOCKED keeps
        # the workers (and other orchestrators) off each other's instances.
        done: list[uuid.UUID] = []
        await asyncio.gather(*(self._work(done) for _ in range(CONCURRENCY)))
        return len(done)

    async def _work(self, done: list[uuid.UUID]) -> None:
        while len(done) < BATCH:
            async with self.ctx.session_factory() as session:
                now = datetime.now(UTC)
                instance = await claim_one(
                    session,
                    [
                        Instance.status == S.provisioning.value,
                        Instance.terminate_requested_at.is_(None),
                        (Instance.next_attempt_at.is_(None)) | (Instance.next_attempt_at <= now),
                        Instance.id.not_in(done) if done else Instance.id.is_not(None),
                    ],
                )
                if instance is None:
                    return
                done.append(instance.id)
                await self.provision(session, instance)
                await commit_and_publish(session, self.ctx.bus)

    async def provision(self, session: AsyncSession, instance: Instance) -> None:
        if instance.bootstrap_secret_hash is None:
            # The secrets must be durable before any server carries them: a create that
            # succeeds but whose transaction dies would otherwise leave a server with
            # secrets nobody knows, which a retried create would find and keep.
            instance_secrets.ensure(instance, self.ctx.keyring)
            await session.commit()
            relocked = await session.scalar(
                select(Instance)
                .where(Instance.id == instance.id, Instance.status == S.provisioning.value)
                .with_for_update(skip_locked=True)
                .execution_options(populate_existing=True)
            )
            if relocked is None:
                return  # another orchestrator took it meanwhile
            instance = relocked
        now = datetime.now(UTC)
        instance.last_processed_at = now
        provider_code, zone, type_code, model = (
            await session.execute(
                select(Provider.code, Zone.code, InstanceType.code, Model.model_id)
                .select_from(Instance)
                .join(Provider, Provider.id == Instance.provider_id)
                .join(Zone, Zone.id == Instance.zone_id)
                .join(InstanceType, InstanceType.id == Instance.instance_type_id)
                .join(Model, Model.id == Instance.model_id)
                .where(Instance.id == instance.id)
            )
        ).one()
        secrets = instance_secrets.ensure(instance, self.ctx.keyring)
        spec = ServerSpec(
            name=str(instance.id),
            zone=zone,
            instance_type=type_code,
            model=model,
            control_plane_url=self.ctx.settings.worker_control_plane_url,
            bootstrap_secret=secrets.bootstrap_secret,
            engine_key=secrets.engine_key,
            heartbeat_interval_s=self.ctx.settings.worker_heartbeat_interval_s,
        )
        try:
            provider = self.ctx.provider(provider_code)
            server = await provider.create(spec)
        except (ProviderError, KeyError) as exc:
            await self._failed_attempt(session, instance, exc)
            return
        instance.provider_instance_id = server.provider_id
        instance.ip_address = server.ip_address
        instance.worker_health_port = server.health_port
        instance.worker_engine_port = server.engine_port
        instance.provider_created_at = instance.provider_created_at or now
        instance.error_code = instance.error_message = None
        record_step(instance, "provider_create", now)
        log_action(
            session,
            instance,
            actions.PROVIDER_CREATE,
            component="orchestrator",
            details={"provider": provider_code, "server": server.provider_id, "zone": zone},
        )
        await self._track_volumes(session, instance, provider_code, server.provider_id)
        await transition(
            session,
            instance,
            S.booting,
            reason="server created at the provider",
            step="provider_running" if server.running else None,
        )

    async def _track_volumes(
        self, session: AsyncSession, instance: Instance, provider_code: str, server_id: str
    ) -> None:
        provider = self.ctx.provider(provider_code)
        for volume in await provider.list_volumes():
            if volume.server_id != server_id:
                continue
            exists = await session.scalar(
                select(InstanceVolume.id).where(
                    InstanceVolume.provider_id == instance.provider_id,
                    InstanceVolume.provider_volume_id == volume.provider_id,
                )
            )
            if exists is None:
                session.add(
                    InstanceVolume(
                        instance_id=instance.id,
                        provider_id=instance.provider_id,
                        zone_code=volume.zone,
                        provider_volume_id=volume.provider_id,
                        name=volume.name,
                        volume_type=volume.volume_type,
                        size_gb=volume.size_gb,
                        is_boot=volume.name.endswith("-boot"),
                    )
                )

    async def _failed_attempt(
        self, session: AsyncSession, instance: Instance, exc: Exception
    ) -> None:
        settings = self.ctx.settings
        instance.attempt_count += 1
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
            details={"attempt": instance.attempt_count},
        )
        if retryable and instance.attempt_count < settings.provision_max_attempts:
            delay = settings.provision_retry_base_s * 2 ** (instance.attempt_count - 1)
            instance.next_attempt_at = datetime.now(UTC) + timedelta(seconds=delay)
            instance.error_code, instance.error_message = "provider_retrying", message
            return
        await transition(
            session,
            instance,
            S.failed,
            reason="provider create failed",
            error_code="provider_create_failed",
            error_message=f"after {instance.attempt_count} attempt(s): {message}",
        )
