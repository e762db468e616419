"""/providers, /regions, /zones, /instance_types and their zone offers; /catalog/sync.

The catalog is shared by every organization: anyone signed in reads it, platform
administrators change it, and each change is audited. A catalog change belongs to no
organization, so its audit row carries none: it would otherwise land in whichever
workspace the administrator happened to have selected, and show a platform operation
to that organization's managers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.audit import service as audit
from inventiv_api.catalog import service
from inventiv_api.catalog.schemas import (
    CatalogUpdate,
    InstanceTypeOut,
    InstanceTypeUpdate,
    ProviderOut,
    RegionOut,
    TypeZoneOut,
    TypeZonesUpdate,
    ZoneOut,
)
from inventiv_api.catalog.service import Entry
from inventiv_api.commands import command_accepted
from inventiv_api.deps import BusDep, SessionDep
from inventiv_api.security.permissions import Permission as P
from inventiv_api.security.principal import Principal, require
from inventiv_api.security.workspace import current_org_id
from inventiv_common.bus import commit_and_publish
from inventiv_common.db.models import InstanceType, Provider, Region, Zone

router = APIRouter(tags=["catalog"])
Reader = Annotated[Principal, Depends(require(P.authenticated))]
Admin = Annotated[Principal, Depends(require(P.catalog_manage))]
ModelManager = Annotated[Principal, Depends(require(P.models_manage))]


def _audit_platform(
    session: AsyncSession,
    request: Request,
    principal: Principal,
    action: str,
    *,
    resource_type: str,
    resource_id: uuid.UUID | None = None,
    details: dict[str, Any],
) -> None:
    # The principal itself is not passed: audit.record would file the row under the
    # administrator's current workspace. Platform administration never runs on an API
    # key, so the actor's user id says all there is to say about who acted.
    audit.record(
        session=session,
        request=request,
        action=action,
        actor_user_id=principal.user_id,
        resource_type=resource_type,
        resource_id=resource_id,
        details=details,
    )


async def _update(
    session: AsyncSession,
    request: Request,
    principal: Principal,
    table: type[Entry],
    updates: Sequence[CatalogUpdate],
    action: str,
    resource_type: str,
) -> list[Entry]:
    """Apply a PUT on one catalog list, audit it, and answer the whole list."""
    await service.apply_updates(session=session, table=table, updates=updates)
    _audit_platform(
        session,
        request,
        principal,
        action,
        resource_type=resource_type,
        details={"changes": [u.model_dump(mode="json", exclude_unset=True) for u in updates]},
    )
    await session.commit()
    return await service.list_entries(session=session, table=table)


@router.get("/providers", response_model=list[ProviderOut])
async def list_providers(_: Reader, session: SessionDep) -> list[Provider]:
    return await service.list_entries(session=session, table=Provider)


@router.put("/providers", response_model=list[ProviderOut])
async def update_providers(
    body: list[CatalogUpdate], principal: Admin, request: Request, session: SessionDep
) -> list[Provider]:
    return await _update(
        session, request, principal, Provider, body, "catalog.providers_updated", "provider"
    )


@router.get("/regions", response_model=list[RegionOut])
async def list_regions(_: Reader, session: SessionDep) -> list[Region]:
    return await service.list_entries(session=session, table=Region)


@router.put("/regions", response_model=list[RegionOut])
async def update_regions(
    body: list[CatalogUpdate], principal: Admin, request: Request, session: SessionDep
) -> list[Region]:
    return await _update(
        session, request, principal, Region, body, "catalog.regions_updated", "region"
    )


@router.get("/zones", response_model=list[ZoneOut])
async def list_zones(_: Reader, session: SessionDep) -> list[Zone]:
    return await service.list_entries(session=session, table=Zone)


@router.put("/zones", response_model=list[ZoneOut])
async def update_zones(
    body: list[CatalogUpdate], principal: Admin, request: Request, session: SessionDep
) -> list[Zone]:
    return await _update(session, request, principal, Zone, body, "catalog.zones_updated", "zone")


@router.get("/instance_types", response_model=list[InstanceTypeOut])
async def list_instance_types(_: Reader, session: SessionDep) -> list[InstanceTypeOut]:
    types = await service.list_entries(session=session, table=InstanceType)
    return await service.describe_types(session=session, types=types)


@router.put("/instance_types", response_model=list[InstanceTypeOut])
async def update_instance_types(
    body: list[InstanceTypeUpdate], principal: Admin, request: Request, session: SessionDep
) -> list[InstanceTypeOut]:
    types = await _update(
        session,
        request,
        principal,
        InstanceType,
        body,
        "catalog.instance_types_updated",
        "instance_type",
    )
    return await service.describe_types(session=session, types=types)


@router.get("/instance_types/{type_id}/zones", response_model=list[TypeZoneOut])
async def instance_type_zones(
    type_id: uuid.UUID, _: Reader, session: SessionDep
) -> list[TypeZoneOut]:
    return await service.zones_of_type(session=session, type_id=type_id)


@router.put("/instance_types/{type_id}/zones", response_model=list[TypeZoneOut])
async def set_instance_type_zones(
    type_id: uuid.UUID,
    body: TypeZonesUpdate,
    principal: Admin,
    request: Request,
    session: SessionDep,
) -> list[TypeZoneOut]:
    await service.set_zones_of_type(session=session, type_id=type_id, zone_ids=body.zone_ids)
    _audit_platform(
        session,
        request,
        principal,
        "catalog.instance_type_zones_updated",
        resource_type="instance_type",
        resource_id=type_id,
        details=body.model_dump(mode="json"),
    )
    await session.commit()
    return await service.zones_of_type(session=session, type_id=type_id)


@router.get("/zones/{zone_id}/instance_types", response_model=list[InstanceTypeOut])
async def zone_instance_types(
    zone_id: uuid.UUID, _: Reader, session: SessionDep
) -> list[InstanceTypeOut]:
    types = await service.types_in_zone(session=session, zone_id=zone_id)
    return await service.describe_types(session=session, types=types)


@router.post("/catalog/sync", status_code=202)
async def catalog_sync(principal: ModelManager, session: SessionDep, bus: BusDep) -> JSONResponse:
    # Its outcome goes to the asking workspace's action log.
    service.request_sync(session=session, organization_id=current_org_id(principal))
    return command_accepted(await commit_and_publish(session, bus))
