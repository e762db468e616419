"""/models: the models the workspace sees, its own models (added, changed, removed by
those who manage models) and their activation. Every change is audited."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from inventiv_api.activation import Activation, switch
from inventiv_api.audit import service as audit
from inventiv_api.deps import SessionDep
from inventiv_api.models import service
from inventiv_api.models.schemas import ModelCreate, ModelOut, ModelUpdate
from inventiv_api.security.permissions import Permission as P
from inventiv_api.security.principal import Principal, require

router = APIRouter(tags=["models"])
ModelReader = Annotated[Principal, Depends(require(P.models_read))]
ModelManager = Annotated[Principal, Depends(require(P.models_manage))]
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
    row = await switch(
        service.set_model_activation,
        resource="model",
        kind=kind,
        resource_id=model_id,
        body=body,
        principal=principal,
        request=request,
        session=session,
    )
    return ModelOut.model_validate(row)


@router.get("/models", response_model=list[ModelOut])
async def list_models(principal: ModelReader, session: SessionDep) -> list[ModelOut]:
    rows = await service.list_models(session=session, principal=principal)
    return [ModelOut.model_validate(r) for r in rows]


@router.get("/models/{model_id}", response_model=ModelOut)
async def get_model(model_id: uuid.UUID, principal: ModelReader, session: SessionDep) -> ModelOut:
    return ModelOut.model_validate(
        await service.get_model(session=session, principal=principal, model_id=model_id)
    )


@router.post("/models", response_model=ModelOut, status_code=201)
async def create_model(
    body: ModelCreate, principal: ModelManager, request: Request, session: SessionDep
) -> ModelOut:
    model = await service.create_model(session=session, principal=principal, body=body)
    audit.record(
        session=session,
        request=request,
        action="model.created",
        principal=principal,
        resource_type="model",
        resource_id=model.id,
        details={"model_id": model.model_id},
    )
    await session.commit()
    await session.refresh(model)
    return ModelOut.model_validate(model)


@router.put("/models/{model_id}", response_model=ModelOut)
async def update_model(
    model_id: uuid.UUID,
    body: ModelUpdate,
    principal: ModelManager,
    request: Request,
    session: SessionDep,
) -> ModelOut:
    model = await service.own_model(session=session, principal=principal, model_id=model_id)
    changed = await service.update_model(session=session, model=model, body=body)
    audit.record(
        session=session,
        request=request,
        action="model.updated",
        principal=principal,
        resource_type="model",
        resource_id=model_id,
        details={"fields": changed},
    )
    await session.commit()
    await session.refresh(model)
    return ModelOut.model_validate(model)


@router.delete("/models/{model_id}", status_code=204)
async def delete_model(
    model_id: uuid.UUID, principal: ModelManager, request: Request, session: SessionDep
) -> Response:
    model = await service.own_model(session=session, principal=principal, model_id=model_id)
    await service.delete_model(session=session, model=model)
    audit.record(
        session=session,
        request=request,
        action="model.deleted",
        principal=principal,
        resource_type="model",
        resource_id=model_id,
    )
    await session.commit()
    return Response(status_code=204)


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
