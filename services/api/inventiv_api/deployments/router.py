"""/deployments, instance termination and archiving, and operator commands."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from inventiv_api.audit import service as audit
from inventiv_api.deployments import service
from inventiv_api.deps import BusDep, KeyRingDep, SessionDep
from inventiv_api.resources.schemas import InstanceOut, VolumeOut
from inventiv_api.security.permissions import Permission as P
from inventiv_api.security.principal import Principal, require
from inventiv_api.security.workspace import current_org_id
from inventiv_common.bus import Envelope, commit_and_publish
from inventiv_common.messages import CMD_SYNC_CATALOG

router = APIRouter(tags=["instances"])
Operator = Annotated[Principal, Depends(require(P.instances_manage))]
CatalogManager = Annotated[Principal, Depends(require(P.models_manage))]


class DeploymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instance_type_id: uuid.UUID
    zone_id: uuid.UUID
    model_id: uuid.UUID


def _correlation(request: Request) -> str | None:
    return (request.headers.get("x-request-id") or "")[:64] or None


@router.post("/deployments", response_model=InstanceOut, status_code=202)
async def create_deployment(
    body: DeploymentIn,
    principal: Operator,
    request: Request,
    session: SessionDep,
    bus: BusDep,
    keyring: KeyRingDep,
) -> InstanceOut:
    instance = await service.create(
        session=session,
        keyring=keyring,
        principal=principal,
        instance_type_id=body.instance_type_id,
        zone_id=body.zone_id,
        model_id=body.model_id,
        correlation_id=_correlation(request),
    )
    await commit_and_publish(session, bus)
    return InstanceOut.model_validate(instance)


@router.delete("/instances/{instance_id}", response_model=InstanceOut, status_code=202)
async def terminate_instance(
    instance_id: uuid.UUID, principal: Operator, request: Request, session: SessionDep, bus: BusDep
) -> InstanceOut:
    instance = await service.terminate(
        session=session,
        principal=principal,
        instance_id=instance_id,
        correlation_id=_correlation(request),
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


class VolumeRetention(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delete_on_terminate: bool


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
    envelope = service.record_reconcile(
        session=session, principal=principal, correlation_id=_correlation(request)
    )
    await session.commit()
    delivered = await bus.publish_safe(envelope)
    return JSONResponse(
        {"command": envelope.type, "id": str(envelope.id), "published": delivered}, 202
    )


@router.post("/catalog/sync", status_code=202)
async def catalog_sync(principal: CatalogManager, bus: BusDep) -> JSONResponse:
    envelope = Envelope(type=CMD_SYNC_CATALOG, organization_id=current_org_id(principal))
    delivered = await bus.publish_safe(envelope)
    return JSONResponse(
        {"command": envelope.type, "id": str(envelope.id), "published": delivered}, 202
    )
