"""Terminator: for every instance asked to go, terminate its server at the provider,
delete its volumes (unless kept), revoke its worker tokens, and close it.

Failed instances keep their status but lose their server too: a failed instance must
never go on costing money.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_common import actions
from inventiv_common.actions import log_action
from inventiv_common.bus import commit_and_publish
from inventiv_common.db.models import Instance, InstanceVolume, Provider, WorkerAuthToken
from inventiv_common.lifecycle import InstanceStatus as S
from inventiv_common.providers.base import CloudProvider, ProviderError
from inventiv_orchestrator.context import Context
from inventiv_orchestrator.loops.base import Loop, claim_one
from inventiv_orchestrator.transitions import transition

BATCH = 50


class TerminatorLoop(Loop):
    name = "terminator"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx.settings.loop_interval_s)
        self.ctx = ctx

    async def run_once(self) -> int:
        done: list[uuid.UUID] = []
        for _ in range(BATCH):
            async with self.ctx.session_factory() as session:
                instance = await claim_one(
                    session,
                    [
                        (
                            Instance.status.in_([S.terminating.value])
                            | (
                                Instance.terminate_requested_at.is_not(None)
                                & Instance.status.not_in([S.terminated.value])
                            )
                            | (
                                (Instance.status == S.failed.value)
                                & Instance.terminated_at.is_(None)
                            )
                        ),
                        Instance.id.not_in(done) if done else Instance.id.is_not(None),
                    ],
                )
                if instance is None:
                    break
                done.append(instance.id)
                await self.terminate(session, instance)
                await commit_and_publish(session, self.ctx.bus)
        return len(done)

    async def terminate(self, session: AsyncSession, instance: Instance) -> None:
        instance.last_processed_at = datetime.now(UTC)
        status = S(instance.status)
        if status is not S.failed and status is not S.terminating:
            transition(session, instance, S.terminating, reason="termination requested")
        provider_code = await session.scalar(
            select(Provider.code).where(Provider.id == instance.provider_id)
        )
        try:
            provider = await self.ctx.provider_for(str(provider_code), instance.organization_id)
            server_id = instance.provider_instance_id
            if server_id is None:
                # A create may have succeeded without its answer being recorded.
                found = await provider.find_by_name(str(instance.id))
                server_id = found.provider_id if found else None
            if server_id is not None:
                await provider.terminate(server_id)
                log_action(
                    session,
                    instance,
                    actions.PROVIDER_TERMINATE,
                    component="orchestrator",
                    details={"server": server_id},
                )
            await self._delete_volumes(session, instance, provider)
        except (ProviderError, KeyError) as exc:
            log_action(
                session,
                instance,
                actions.PROVIDER_TERMINATE,
                component="orchestrator",
                status="failed",
                error_code=getattr(exc, "code", "provider_not_configured"),
                error_message=str(exc),
            )
            return  # retried on the next pass
        await session.execute(
            update(WorkerAuthToken)
            .where(WorkerAuthToken.instance_id == instance.id, WorkerAuthToken.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
        self.ctx.tokens.revoke(instance.id)
        if status is S.failed:
            instance.terminated_at = datetime.now(UTC)  # server released; status stays failed
        else:
            transition(session, instance, S.terminated, reason="server terminated")

    async def _delete_volumes(
        self, session: AsyncSession, instance: Instance, provider: CloudProvider
    ) -> None:
        volumes = await session.scalars(
            select(InstanceVolume).where(
                InstanceVolume.instance_id == instance.id, InstanceVolume.deleted_at.is_(None)
            )
        )
        for volume in volumes:
            keep = not volume.delete_on_terminate
            if keep and volume.status == "kept":
                continue  # a pass retried after a provider error: already recorded
            if keep:
                volume.status = "kept"
            else:
                await provider.delete_volume(volume.provider_volume_id)
                volume.status, volume.deleted_at = "deleted", datetime.now(UTC)
            log_action(
                session,
                instance,
                actions.VOLUME_KEPT if keep else actions.VOLUME_DELETED,
                component="orchestrator",
                details={"volume": volume.provider_volume_id, "size_gb": volume.size_gb},
            )
