"""/deployments: ask for a model to be served on an instance type in a zone."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from inventiv_api.deployments import service
from inventiv_api.deployments.schemas import DeploymentIn
from inventiv_api.deps import BusDep, KeyRingDep, SessionDep
from inventiv_api.instances.schemas import InstanceOut
from inventiv_api.requests import correlation_id
from inventiv_api.security.permissions import Permission as P
from inventiv_api.security.principal import Principal, require
from inventiv_common.bus import commit_and_publish

router = APIRouter(tags=["instances"])
Operator = Annotated[Principal, Depends(require(P.instances_manage))]


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
        fallback_zone_ids=body.fallback_zone_ids,
        any_zone_in_region=body.any_zone_in_region,
        correlation_id=correlation_id(request),
    )
    await commit_and_publish(session, bus)
    return InstanceOut.model_validate(instance)
