"""Instances of the caller's workspace: reading them, asking for their termination,
archiving them, keeping their volumes, switching their activation, and the operator's
reconcile command. Every lookup is scoped to the current organization: an id of another
organization is indistinguishable from one that does not exist. Nothing here changes an
instance's state (only the orchestrator does); nothing commits: commands are queued to
go out after the route's commit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.errors import conflict, not_found
from inventiv_api.security.principal import Principal
from inventiv_api.security.workspace import current_org_id
from inventiv_common import actions
from inventiv_common.actions import log_action
from inventiv_common.bus import Envelope, publish_after_commit
from inventiv_common.db.models import Instance, InstanceRequestMetrics, InstanceVolume
from inventiv_common.instance_requests import request_termination, set_flags
from inventiv_common.lifecycle import ARCHIVABLE_STATES, LIVE_STATES, InstanceStatus
from inventiv_common.messages import CMD_RECONCILE


async def list_instances(
    *, session: AsyncSession, principal: Principal, archived: bool | None, limit: int, offset: int
) -> tuple[list[Instance], int]:
    query = select(Instance).where(Instance.organization_id == current_org_id(principal))
    if archived is not None:
        query = query.where(Instance.is_archived.is_(archived))
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(Instance.created_at.desc(), Instance.id).limit(limit).offset(offset)
    )
    return list(rows), int(total or 0)


async def get_instance(
    *, session: AsyncSession, principal: Principal, instance_id: uuid.UUID
) -> Instance:
    instance = await session.scalar(
        select(Instance).where(
            Instance.id == instance_id, Instance.organization_id == current_org_id(principal)
        )
    )
    if instance is None:
        raise not_found("instance")
    return instance


async def instance_metrics(
    *, session: AsyncSession, principal: Principal, instance_id: uuid.UUID
) -> InstanceRequestMetrics | None:
    """The gateway's running totals for an instance of the workspace (None: no request yet)."""
    await get_instance(session=session, principal=principal, instance_id=instance_id)
    return await session.get(InstanceRequestMetrics, instance_id)


async def list_volumes(
    *, session: AsyncSession, principal: Principal, instance_id: uuid.UUID
) -> list[InstanceVolume]:
    """The volumes tracked for an instance of the workspace, deleted ones included."""
    await get_instance(session=session, principal=principal, instance_id=instance_id)
    rows = await session.scalars(
        select(InstanceVolume)
        .where(InstanceVolume.instance_id == instance_id)
        .order_by(InstanceVolume.created_at, InstanceVolume.id)
    )
    return list(rows)


async def set_instance_activation(
    *,
    session: AsyncSession,
    principal: Principal,
    resource_id: uuid.UUID,
    kind: str,
    active: bool,
) -> Instance:
    instance = await get_instance(session=session, principal=principal, instance_id=resource_id)
    # A flag, not a lifecycle change: it must not collide with the orchestrator's writes.
    await set_flags(session, instance, **{f"{kind}_activation": active})
    return instance


async def terminate(
    *,
    session: AsyncSession,
    principal: Principal,
    instance_id: uuid.UUID,
    correlation_id: str | None,
) -> Instance:
    instance = await get_instance(session=session, principal=principal, instance_id=instance_id)
    if instance.status == InstanceStatus.terminated.value:
        return instance  # already gone: asking again changes nothing
    await request_termination(
        session,
        instance,
        component="api",
        user_id=principal.user_id,
        correlation_id=correlation_id,
    )
    await session.flush()
    await session.refresh(instance)
    return instance


async def archive(
    *, session: AsyncSession, principal: Principal, instance_id: uuid.UUID
) -> Instance:
    instance = await get_instance(session=session, principal=principal, instance_id=instance_id)
    if InstanceStatus(instance.status) not in ARCHIVABLE_STATES:
        raise conflict(
            "not_archivable",
            f"only terminated or failed instances can be archived, not {instance.status}",
        )
    if not instance.is_archived:
        await set_flags(session, instance, is_archived=True, archived_at=datetime.now(UTC))
        log_action(session, instance, actions.ARCHIVED, component="api", user_id=principal.user_id)
        await session.flush()
    return instance


async def set_volume_retention(
    *,
    session: AsyncSession,
    principal: Principal,
    instance_id: uuid.UUID,
    volume_id: uuid.UUID,
    delete_on_terminate: bool,
) -> InstanceVolume:
    """Keep a volume past its instance's termination, or let it go with it. Decided
    before termination starts: the instance row is locked as the terminator locks it,
    so the choice is never made while its volumes are being deleted."""
    instance = await get_instance(session=session, principal=principal, instance_id=instance_id)
    status = await session.scalar(
        select(Instance.status)
        .where(Instance.id == instance.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    volume = await session.scalar(
        select(InstanceVolume).where(
            InstanceVolume.id == volume_id, InstanceVolume.instance_id == instance.id
        )
    )
    if volume is None:
        raise not_found("volume")
    if status not in LIVE_VOLUME_STATES or volume.deleted_at is not None:
        raise conflict(
            "volume_settled",
            f"the instance is {status}: its volumes are already being deleted or kept",
        )
    volume.delete_on_terminate = delete_on_terminate
    return volume


# Before termination: afterwards the terminator has decided each volume's fate.
LIVE_VOLUME_STATES = {s.value for s in LIVE_STATES - {InstanceStatus.terminating}}


def request_reconcile(
    *, session: AsyncSession, principal: Principal, correlation_id: str | None
) -> None:
    """Queue a CMD:RECONCILE, recorded in the workspace's action log first."""
    envelope = Envelope(
        type=CMD_RECONCILE,
        organization_id=current_org_id(principal),
        correlation_id=correlation_id,
    )
    log_action(
        session,
        None,
        actions.RECONCILE,
        component="api",
        user_id=principal.user_id,
        organization_id=envelope.organization_id,
        correlation_id=correlation_id,
        details={"command": envelope.type, "id": str(envelope.id)},
    )
    publish_after_commit(session, envelope)
