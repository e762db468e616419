"""Models visible to the caller's workspace (public ones and its own), their activation,
and the workspace's own models: adding, changing and removing them. Public models are
shared by every organization, so no organization may change them. Nothing commits.

A model's `model_id` is the name clients ask the gateway for, and the gateway routes an
organization's requests by that name alone: a private model may therefore not take the
id of a public one (nor of another of its organization's). Public models come from the
catalog seed; no route adds them. A model's id never changes once created."""

from __future__ import annotations

import uuid

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.errors import ApiError, conflict, forbidden, not_found
from inventiv_api.models.schemas import ModelCreate, ModelUpdate
from inventiv_api.security.principal import Principal
from inventiv_api.security.workspace import current_org_id
from inventiv_common.db.models import Instance, Model

# Fields a change may not clear (the others accept null).
# Fields a model always has: an explicit null for them is refused, not stored.
REQUIRED_FIELDS = (
    "name",
    "is_active",
    "required_vram_gb",
    "price_per_1k_input_tokens_eur",
    "price_per_1k_output_tokens_eur",
    "data_volume_gb",
    "requires_hf_token",
)


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


async def create_model(*, session: AsyncSession, principal: Principal, body: ModelCreate) -> Model:
    """Add a model to the workspace; 409 when its model_id is a public model's or is
    already in the workspace, in any case (ids that differ only by case would be told
    apart by the gateway, but not by the people choosing between them)."""
    org_id = current_org_id(principal)
    owners = set(
        await session.scalars(
            select(Model.organization_id).where(
                func.lower(Model.model_id) == body.model_id.lower(),
                or_(Model.organization_id.is_(None), Model.organization_id == org_id),
            )
        )
    )
    if None in owners:
        raise conflict(
            "public_model_exists",
            f"{body.model_id} is a public model's id; a private model needs an id of its own",
        )
    if owners:
        raise _already_there(body.model_id)
    model = Model(organization_id=org_id, **body.model_dump())
    try:
        # Two creations at once: the unique index answers for the slower one.
        async with session.begin_nested():
            session.add(model)
            await session.flush()
    except IntegrityError:
        raise _already_there(body.model_id) from None
    return model


def _already_there(model_id: str) -> ApiError:
    return conflict("model_exists", f"{model_id} already exists in this organization")


async def own_model(*, session: AsyncSession, principal: Principal, model_id: uuid.UUID) -> Model:
    """One of the workspace's own models: 404 when it cannot see it, 403 when public."""
    model = await get_model(session=session, principal=principal, model_id=model_id)
    if model.organization_id is None:
        raise forbidden("public models are managed by platform administrators")
    return model


async def update_model(*, session: AsyncSession, model: Model, body: ModelUpdate) -> list[str]:
    """Apply the fields the body sets; the names of those fields."""
    changes = body.model_dump(exclude_unset=True)
    for field, value in changes.items():
        if value is None and field in REQUIRED_FIELDS:
            raise ApiError(422, "validation_error", f"{field} cannot be null")
        setattr(model, field, value)
    await session.flush()
    return sorted(changes)


async def delete_model(*, session: AsyncSession, model: Model) -> None:
    """Remove a model no instance refers to (409 otherwise: deactivate it instead)."""
    if await session.scalar(select(Instance.id).where(Instance.model_id == model.id).limit(1)):
        raise conflict("model_in_use", "instances reference this model; deactivate it instead")
    await session.delete(model)
    await session.flush()
