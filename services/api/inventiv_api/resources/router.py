"""/instances and /models reads, and their technical and economic activation."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from inventiv_api.audit import service as audit
from inventiv_api.deps import SessionDep
from inventiv_api.resources import service
from inventiv_api.resources.schemas import (
    Activation,
    InstanceMetricsOut,
    InstanceOut,
    InstancePage,
    ModelOut,
    VolumeOut,
)
from inventiv_api.security.permissions import Permission as P
from inventiv_api.security.principal import Principal, require

router = APIRouter(tags=["instances", "models"])
InstanceReader = Annotated[Principal, Depends(require(P.instances_read))]
ModelReader = Annotated[Principal, Depends(require(P.models_read))]
Technical = Annotated[Principal, Depends(require(P.activation_technical))]
Economic = Annotated[Principal, Depends(require(P.activation_economic))]


@router.get("/instances", response_model=InstancePage)
async def list_instances(
    principal: InstanceReader,
    session: SessionDep,
    archived: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> InstancePage:
    rows, total = await service.list_instances(
        session=session, principal=principal, archived=archived, limit=limit, offset=offset
    )
    return InstancePage(
        items=[InstanceOut.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
    )


@router.get("/instances/{instance_id}", response_model=InstanceOut)
async def get_instance(
    instance_id: uuid.UUID, principal: InstanceReader, session: SessionDep
) -> InstanceOut:
    row = await service.get_instance(session=session, principal=principal, instance_id=instance_id)
    return InstanceOut.model_validate(row)


@router.get("/instances/{instance_id}/volumes", response_model=list[VolumeOut])
async def list_instance_volumes(
    instance_id: uuid.UUID, principal: InstanceReader, session: SessionDep
) -> list[VolumeOut]:
    rows = await service.list_volumes(session=session, principal=principal, instance_id=instance_id)
    return [VolumeOut.model_validate(r) for r in rows]


@router.get("/instances/{instance_id}/metrics", response_model=InstanceMetricsOut)
async def get_instance_metrics(
    instance_id: uuid.UUID, principal: InstanceReader, session: SessionDep
) -> InstanceMetricsOut:
    row = await service.instance_metrics(
        session=session, principal=principal, instance_id=instance_id
    )
    if row is None:
        return InstanceMetricsOut(instance_id=instance_id)
    return InstanceMetricsOut(
        instance_id=instance_id,
        total_requests=row.total_requests,
        successful_requests=row.successful_requests,
        failed_requests=row.failed_requests,
        success_rate=row.successful_requests / row.total_requests if row.total_requests else None,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        total_tokens=row.total_tokens,
        first_request_at=row.first_request_at,
        last_request_at=row.last_request_at,
    )


async def _switch(
    resource: str,
    kind: str,
    resource_id: uuid.UUID,
    body: Activation,
    principal: Principal,
    request: Request,
    session: SessionDep,
) -> Any:
    """Switch one activation of an instance or a model, audited; returns the row."""
    setter = (
        service.set_instance_activation if resource == "instance" else service.set_model_activation
    )
    row = await setter(
        session=session, principal=principal, resource_id=resource_id, kind=kind, active=body.active
    )
    audit.record(
        session=session,
        request=request,
        action=f"{resource}.{kind}_activation",
        principal=principal,
        resource_type=resource,
        resource_id=resource_id,
        details={"active": body.active},
    )
    await session.commit()
    return row


@router.put("/instances/{instance_id}/activation/technical", response_model=InstanceOut)
async def instance_technical_activation(
    instance_id: uuid.UUID,
    body: Activation,
    principal: Technical,
    request: Request,
    session: SessionDep,
) -> InstanceOut:
    row = await _switch("instance", "technical", instance_id, body, principal, request, session)
    return InstanceOut.model_validate(row)


@router.put("/instances/{instance_id}/activation/economic", response_model=InstanceOut)
async def instance_economic_activation(
    instance_id: uuid.UUID,
    body: Activation,
    principal: Economic,
    request: Request,
    session: SessionDep,
) -> InstanceOut:
    row = await _switch("instance", "economic", instance_id, body, principal, request, session)
    return InstanceOut.model_validate(row)


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
    return ModelOut.model_validate(
        await _switch("model", "technical", model_id, body, principal, request, session)
    )


@router.put("/models/{model_id}/activation/economic", response_model=ModelOut)
async def model_economic_activation(
    model_id: uuid.UUID,
    body: Activation,
    principal: Economic,
    request: Request,
    session: SessionDep,
) -> ModelOut:
    return ModelOut.model_validate(
        await _switch("model", "economic", model_id, body, principal, request, session)
    )
