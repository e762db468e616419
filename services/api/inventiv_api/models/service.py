"""Models visible to the caller's workspace (public ones and its own), and their
activation. Nothing commits."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.errors import forbidden, not_found
from inventiv_api.security.principal import Principal
from inventiv_api.security.workspace import current_org_id
from inventiv_common.db.models import Model


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
