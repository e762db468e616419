"""Reading instances and models in the caller's workspace, and switching activations.

Every lookup is scoped to the current organization: an id of another organization is
indistinguishable from an id that does not exist.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.errors import forbidden, not_found
from inventiv_api.security.principal import Principal
from inventiv_api.security.workspace import current_org_id
from inventiv_common.db.models import Instance, InstanceRequestMetrics, InstanceVolume, Model
from inventiv_common.instance_requests import set_flags


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


async def list_models(*, session: AsyncSession, principal: Principal) -> list[Model]:
    org_id = current_org_id(principal)
    rows = await session.scalars(
        select(Model)
        .where((Model.organization_id.is_(None)) | (Model.organization_id == org_id))
        .order_by(Model.name)
    )
    return list(rows)


async def get_model(*, session: AsyncSession, principal: Principal, model_id: uuid.UUID) -> Model:
    org_id = current_org_id(principal)
    model = await session.scalar(
        select(Model).where(
            Model.id == model_id,
            (Model.organization_id.is_(None)) | (Model.organization_id == org_id),
        )
    )
    if model is None:
        raise not_found("model")
    return model


async def set_model_activation(
    *, session: AsyncSession, principal: Principal, resource_id: uuid.UUID, kind: str, active: bool
) -> Model:
    model = await get_model(session=session, principal=principal, model_id=resource_id)
    if model.organization_id is None:
        # A public model is shared by every organization: one of them cannot switch it.
        raise forbidden("public models are switched by platform administrators")
    setattr(model, f"{kind}_activation", active)
    await session.flush()
    return model


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
