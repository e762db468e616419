"""/instances: reads, termination, archiving, volumes, activation; /reconcile."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from inventiv_api.activation import Activation, switch
from inventiv_api.audit import service as audit
from inventiv_api.commands import command_accepted
from inventiv_api.deps import BusDep, SessionDep
from inventiv_api.instances import service
from inventiv_api.instances.schemas import (
    InstanceMetricsOut,
    InstanceOut,
    InstancePage,
    VolumeOut,
    VolumeRetention,
)
from inventiv_api.requests import correlation_id
from inventiv_api.security.permissions import Permission as P
from inventiv_api.security.principal import Principal, require
from inventiv_api.types import Offset
from inventiv_common.bus import commit_and_publish

router = APIRouter(tags=["instances"])
InstanceReader = Annotated[Principal, Depends(require(P.instances_read))]
Operator = Annotated[Principal, Depends(require(P.instances_manage))]
Technical = Annotated[Principal, Depends(require(P.activation_technical))]
Economic = Annotated[Principal, Depends(require(P.activation_economic))]


@router.get("/instances", response_model=InstancePage)
async def list_instances(
    principal: InstanceReader,
    session: SessionDep,
    archived: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
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
    kind: str,
    instance_id: uuid.UUID,
    body: Activation,
    principal: Principal,
    request: Request,
    session: SessionDep,
) -> InstanceOut:
    row = await switch(
        service.set_instance_activation,
        resource="instance",
        kind=kind,
        resource_id=instance_id,
        body=body,
        principal=principal,
        request=request,
        session=session,
    )
    return InstanceOut.model_validate(row)


@router.put("/instances/{instance_id}/activation/technical", response_model=InstanceOut)
async def instance_technical_activation(
    instance_id: uuid.UUID,
    body: Activation,
    principal: Technical,
    request: Request,
    session: SessionDep,
) -> InstanceOut:
    return await _switch("technical", instance_id, body, principal, request, session)


@router.put("/instances/{instance_id}/activation/economic", response_model=InstanceOut)
async def instance_economic_activation(
    instance_id: uuid.UUID,
    body: Activation,
    principal: Economic,
    request: Request,
    session: SessionDep,
) -> InstanceOut:
    return await _switch("economic", instance_id, body, principal, request, session)


@router.delete("/instances/{instance_id}", response_model=InstanceOut, status_code=202)
async def terminate_instance(
    instance_id: uuid.UUID, principal: Operator, request: Request, session: SessionDep, bus: BusDep
) -> InstanceOut:
    instance = await service.terminate(
        session=session,
        principal=principal,
        instance_id=instance_id,
        correlation_id=correlation_id(request),
    )
    await commit_and_publish(session, bus)
    return InstanceOut.model_validate(instance)


@router.put("/instances/{instance_id}/archive", response_model=InstanceOut)
async def archive_instance(
    instance_id: uuid.UUID, principal: Operator, session: SessionDep
) -> InstanceOut:
    instance = await service.archive(session=session, principal=principal, instance_id=instance_id)
    await session.commit()
    return InstanceOut.model_validate(instance)


@router.put("/instances/{instance_id}/volumes/{volume_id}", response_model=VolumeOut)
async def set_volume_retention(
    instance_id: uuid.UUID,
    volume_id: uuid.UUID,
    body: VolumeRetention,
    principal: Operator,
    request: Request,
    session: SessionDep,
) -> VolumeOut:
    volume = await service.set_volume_retention(
        session=session,
        principal=principal,
        instance_id=instance_id,
        volume_id=volume_id,
        delete_on_terminate=body.delete_on_terminate,
    )
    audit.record(
        session=session,
        request=request,
        action="instance.volume_retention",
        principal=principal,
        resource_type="instance",
        resource_id=instance_id,
        details={"volume": volume.provider_volume_id, **body.model_dump()},
    )
    await session.commit()
    return VolumeOut.model_validate(volume)


@router.post("/reconcile", status_code=202)
async def reconcile(
    principal: Operator, request: Request, session: SessionDep, bus: BusDep
) -> JSONResponse:
    service.request_reconcile(
        session=session, principal=principal, correlation_id=correlation_id(request)
    )
    return command_accepted(await commit_and_publish(session, bus))
