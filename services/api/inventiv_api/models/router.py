"""/models: the models the workspace sees, and their activation."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from inventiv_api.activation import Activation
from inventiv_api.audit import service as audit
from inventiv_api.deps import SessionDep
from inventiv_api.models import service
from inventiv_api.models.schemas import ModelOut
from inventiv_api.security.permissions import Permission as P
from inventiv_api.security.principal import Principal, require

router = APIRouter(tags=["models"])
ModelReader = Annotated[Principal, Depends(require(P.models_read))]
Technical = Annotated[Principal, Depends(require(P.activation_technical))]
Economic = Annotated[Principal, Depends(require(P.activation_economic))]


async def _switch(
    kind: str,
    model_id: uuid.UUID,
    body: Activation,
    principal: Principal,
    request: Request,
    session: SessionDep,
) -> ModelOut:
    """Switch one activation of a model, audited."""
    model = await service.set_model_activation(
        session=session, principal=principal, resource_id=model_id, kind=kind, active=body.active
    )
    audit.record(
        session=session,
        request=request,
        action=f"model.{kind}_activation",
        principal=principal,
        resource_type="model",
        resource_id=model_id,
        details={"active": body.active},
    )
    await session.commit()
    return ModelOut.model_validate(model)


@router.get("/models", response_model=list[ModelOut])
async def list_models(principal: ModelReader, session: SessionDep) -> list[ModelOut]:
    rows = await service.list_models(session=session, principal=principal)
    return [ModelOut.model_validate(r) for r in rows]


@router.get("/models/{model_id}", response_model=ModelOut)
async def get_model(model_id: uuid.UUID, principal: ModelReader, session: SessionDep) -> ModelOut:
    return ModelOut.model_validate(
        await service.get_model(session=session, principal=principal, model_id=model_id)
    )


@router.put("/models/{model_id}/activation/technical", response_model=ModelOut)
async def model_technical_activation(
    model_id: uuid.UUID,
    body: Activation,
    principal: Technical,
    request: Request,
    session: SessionDep,
) -> ModelOut:
    return await _switch("technical", model_id, body, principal, request, session)


@router.put("/models/{model_id}/activation/economic", response_model=ModelOut)
async def model_economic_activation(
    model_id: uuid.UUID,
    body: Activation,
    principal: Economic,
    request: Request,
    session: SessionDep,
) -> ModelOut:
    return await _switch("economic", model_id, body, principal, request, session)
