"""/providers, /regions, /zones, /instance_types and their zone offers; /models writes.

The catalog is shared by every organization: anyone signed in reads it, platform
administrators change it. Models may be private to an organization, which manages
its own."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.audit import service as audit
from inventiv_api.catalog.schemas import (
    CatalogUpdate,
    InstanceTypeOut,
    InstanceTypeUpdate,
    ModelCreate,
    ModelUpdate,
    ProviderOut,
    RegionOut,
    TypeZonesUpdate,
    ZoneOut,
)
from inventiv_api.deps import BusDep, SessionDep
from inventiv_api.errors import ApiError, conflict, forbidden, not_found
from inventiv_api.models.schemas import ModelOut
from inventiv_api.models.service import get_model
from inventiv_api.security.permissions import Permission as P
from inventiv_api.security.principal import Principal, require
from inventiv_api.security.workspace import current_org_id
from inventiv_common.bus import Envelope
from inventiv_common.db.models import (
    Instance,
    InstanceType,
    InstanceTypeZone,
    Model,
    Provider,
    Region,
    Zone,
)
from inventiv_common.messages import CMD_SYNC_CATALOG

router = APIRouter(tags=["catalog"])
Reader = Annotated[Principal, Depends(require(P.authenticated))]
Admin = Annotated[Principal, Depends(require(P.catalog_manage))]
ModelManager = Annotated[Principal, Depends(require(P.models_manage))]
T = TypeVar("T", Provider, Region, Zone, InstanceType)


async def _list(session: AsyncSession, model: type[T]) -> list[T]:
    return list(await session.scalars(select(model).order_by(model.code)))


async def _apply(session: AsyncSession, model: type[Any], updates: list[Any]) -> None:
    for update in updates:
        row = await session.get(model, update.id)
        if row is None:
            raise not_found(model.__tablename__.rstrip("s").replace("_", " "))
        for field, value in update.model_dump(exclude_unset=True, exclude={"id"}).items():
            if value is None:
                raise ApiError(422, "validation_error", f"{field} cannot be null")
            setattr(row, field, value)
    await session.flush()


@router.get("/providers", response_model=list[ProviderOut])
async def list_providers(_: Reader, session: SessionDep) -> list[Provider]:
    return await _list(session, Provider)


@router.put("/providers", response_model=list[ProviderOut])
async def update_providers(
    body: list[CatalogUpdate], _: Admin, session: SessionDep
) -> list[Provider]:
    await _apply(session, Provider, body)
    await session.commit()
    return await _list(session, Provider)


@router.get("/regions", response_model=list[RegionOut])
async def list_regions(_: Reader, session: SessionDep) -> list[Region]:
    return await _list(session, Region)


@router.put("/regions", response_model=list[RegionOut])
async def update_regions(body: list[CatalogUpdate], _: Admin, session: SessionDep) -> list[Region]:
    await _apply(session, Region, body)
    await session.commit()
    return await _list(session, Region)


@router.get("/zones", response_model=list[ZoneOut])
async def list_zones(_: Reader, session: SessionDep) -> list[Zone]:
    return await _list(session, Zone)


@router.put("/zones", response_model=list[ZoneOut])
async def update_zones(body: list[CatalogUpdate], _: Admin, session: SessionDep) -> list[Zone]:
    await _apply(session, Zone, body)
    await session.commit()
    return await _list(session, Zone)


@router.get("/instance_types", response_model=list[InstanceTypeOut])
async def list_instance_types(_: Reader, session: SessionDep) -> list[InstanceType]:
    return await _list(session, InstanceType)


@router.put("/instance_types", response_model=list[InstanceTypeOut])
async def update_instance_types(
    body: list[InstanceTypeUpdate], _: Admin, session: SessionDep
) -> list[InstanceType]:
    await _apply(session, InstanceType, body)
    await session.commit()
    return await _list(session, InstanceType)


async def _type_zones(session: AsyncSession, type_id: uuid.UUID) -> list[Zone]:
    if await session.get(InstanceType, type_id) is None:
        raise not_found("instance type")
    return list(
        await session.scalars(
            select(Zone)
            .join(InstanceTypeZone, InstanceTypeZone.zone_id == Zone.id)
            .where(InstanceTypeZone.instance_type_id == type_id)
            .order_by(Zone.code)
        )
    )


@router.get("/instance_types/{type_id}/zones", response_model=list[ZoneOut])
async def instance_type_zones(type_id: uuid.UUID, _: Reader, session: SessionDep) -> list[Zone]:
    return await _type_zones(session, type_id)


@router.put("/instance_types/{type_id}/zones", response_model=list[ZoneOut])
async def set_instance_type_zones(
    type_id: uuid.UUID, body: TypeZonesUpdate, _: Admin, session: SessionDep
) -> list[Zone]:
    instance_type = await session.get(InstanceType, type_id)
    if instance_type is None:
        raise not_found("instance type")
    zones = list(
        await session.scalars(
            select(Zone).join(Region, Region.id == Zone.region_id).where(Zone.id.in_(body.zone_ids))
        )
    )
    if len(zones) != len(set(body.zone_ids)):
        raise not_found("zone")
    regions = {
        r.id: r
        for r in await session.scalars(
            select(Region).where(Region.id.in_({z.region_id for z in zones}))
        )
    }
    if any(regions[z.region_id].provider_id != instance_type.provider_id for z in zones):
        raise ApiError(422, "wrong_provider", "every zone must belong to the type's provider")
    await session.execute(
        delete(InstanceTypeZone).where(InstanceTypeZone.instance_type_id == type_id)
    )
    session.add_all(InstanceTypeZone(instance_type_id=type_id, zone_id=z.id) for z in zones)
    await session.commit()
    return await _type_zones(session, type_id)


@router.get("/zones/{zone_id}/instance_types", response_model=list[InstanceTypeOut])
async def zone_instance_types(
    zone_id: uuid.UUID, _: Reader, session: SessionDep
) -> list[InstanceType]:
    if await session.get(Zone, zone_id) is None:
        raise not_found("zone")
    return list(
        await session.scalars(
            select(InstanceType)
            .join(InstanceTypeZone, InstanceTypeZone.instance_type_id == InstanceType.id)
            .where(InstanceTypeZone.zone_id == zone_id, InstanceTypeZone.is_available)
            .order_by(InstanceType.code)
        )
    )


@router.post("/models", response_model=ModelOut, status_code=201)
async def create_model(
    body: ModelCreate, principal: ModelManager, request: Request, session: SessionDep
) -> ModelOut:
    org_id = current_org_id(principal)
    taken = await session.scalar(
        select(Model.id).where(Model.model_id == body.model_id, Model.organization_id == org_id)
    )
    if taken is not None:
        raise conflict("model_exists", f"{body.model_id} already exists in this organization")
    model = Model(organization_id=org_id, **body.model_dump())
    session.add(model)
    await session.flush()
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


async def _own_model(session: AsyncSession, principal: Principal, model_id: uuid.UUID) -> Model:
    model = await get_model(session=session, principal=principal, model_id=model_id)
    if model.organization_id is None:
        raise forbidden("public models are managed by platform administrators")
    return model


@router.put("/models/{model_id}", response_model=ModelOut)
async def update_model(
    model_id: uuid.UUID, body: ModelUpdate, principal: ModelManager, session: SessionDep
) -> ModelOut:
    model = await _own_model(session, principal, model_id)
    for field, value in body.model_dump(exclude_unset=True).items():
        if value is None and field in ("name", "is_active", "required_vram_gb"):
            raise ApiError(422, "validation_error", f"{field} cannot be null")
        setattr(model, field, value)
    await session.commit()
    await session.refresh(model)
    return ModelOut.model_validate(model)


@router.delete("/models/{model_id}", status_code=204)
async def delete_model(
    model_id: uuid.UUID, principal: ModelManager, request: Request, session: SessionDep
) -> Response:
    model = await _own_model(session, principal, model_id)
    if await session.scalar(select(Instance.id).where(Instance.model_id == model.id).limit(1)):
        raise conflict("model_in_use", "instances reference this model; deactivate it instead")
    await session.delete(model)
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


@router.post("/catalog/sync", status_code=202)
async def catalog_sync(principal: ModelManager, bus: BusDep) -> JSONResponse:
    envelope = Envelope(type=CMD_SYNC_CATALOG, organization_id=current_org_id(principal))
    delivered = await bus.publish_safe(envelope)
    return JSONResponse(
        {"command": envelope.type, "id": str(envelope.id), "published": delivered}, 202
    )
