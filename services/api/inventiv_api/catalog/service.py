"""The shared provider catalog: providers, regions, zones, instance types, and which
zones offer which type. Every organization deploys from the same catalog, so there is
no workspace scoping here; who may change it is the router's declared permission.
Nothing commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TypeVar

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.catalog.schemas import CatalogUpdate, InstanceTypeOut, TypeZoneOut, ZoneOut
from inventiv_api.errors import ApiError, not_found
from inventiv_common.bus import Envelope, publish_after_commit
from inventiv_common.db.models import InstanceType, InstanceTypeZone, Provider, Region, Zone
from inventiv_common.messages import CMD_SYNC_CATALOG

Entry = TypeVar("Entry", Provider, Region, Zone, InstanceType)


async def list_entries(*, session: AsyncSession, table: type[Entry]) -> list[Entry]:
    """Every row of one catalog list, by code."""
    return list(await session.scalars(select(table).order_by(table.code)))


async def apply_updates(
    *, session: AsyncSession, table: type[Entry], updates: Sequence[CatalogUpdate]
) -> None:
    """Apply each update to its row; 404 for an unknown id, 422 for a null field."""
    for update in updates:
        row = await session.get(table, update.id)
        if row is None:
            raise not_found(table.__tablename__.rstrip("s").replace("_", " "))
        for field, value in update.model_dump(exclude_unset=True, exclude={"id"}).items():
            if value is None:
                raise ApiError(422, "validation_error", f"{field} cannot be null")
            setattr(row, field, value)
    await session.flush()


async def describe_types(
    *, session: AsyncSession, types: Sequence[InstanceType]
) -> list[InstanceTypeOut]:
    """The types as the api shows them: each with its stock in every zone offering it."""
    stock: dict[uuid.UUID, dict[str, str]] = {t.id: {} for t in types}
    rows = await session.execute(
        select(InstanceTypeZone.instance_type_id, Zone.code, InstanceTypeZone.availability)
        .join(Zone, Zone.id == InstanceTypeZone.zone_id)
        .where(InstanceTypeZone.instance_type_id.in_(stock), InstanceTypeZone.is_available)
        .order_by(Zone.code)
    )
    for type_id, zone_code, availability in rows:
        stock[type_id][zone_code] = availability
    return [
        InstanceTypeOut.model_validate(t).model_copy(update={"availability": stock[t.id]})
        for t in types
    ]


async def zones_of_type(*, session: AsyncSession, type_id: uuid.UUID) -> list[TypeZoneOut]:
    """The zones that sell an instance type, by code, with the offer's state and stock."""
    if await session.get(InstanceType, type_id) is None:
        raise not_found("instance type")
    rows = await session.execute(
        select(Zone, InstanceTypeZone.is_available, InstanceTypeZone.availability)
        .join(InstanceTypeZone, InstanceTypeZone.zone_id == Zone.id)
        .where(InstanceTypeZone.instance_type_id == type_id)
        .order_by(Zone.code)
    )
    return [
        TypeZoneOut.model_validate(
            {
                **ZoneOut.model_validate(zone).model_dump(),
                "is_available": offered,
                "availability": level,
            }
        )
        for zone, offered, level in rows
    ]


async def set_zones_of_type(
    *, session: AsyncSession, type_id: uuid.UUID, zone_ids: list[uuid.UUID]
) -> None:
    """Replace the zones offering an instance type; every zone must exist and belong to
    the type's provider."""
    instance_type = await session.get(InstanceType, type_id)
    if instance_type is None:
        raise not_found("instance type")
    zones = list(
        await session.scalars(
            select(Zone).join(Region, Region.id == Zone.region_id).where(Zone.id.in_(zone_ids))
        )
    )
    if len(zones) != len(set(zone_ids)):
        raise not_found("zone")
    regions = {
        r.id: r
        for r in await session.scalars(
            select(Region).where(Region.id.in_({z.region_id for z in zones}))
        )
    }
    if any(regions[z.region_id].provider_id != instance_type.provider_id for z in zones):
        raise ApiError(422, "wrong_provider", "every zone must belong to the type's provider")
    # The zones kept keep their offer as it is (the provider's word on stock included).
    await session.execute(
        delete(InstanceTypeZone).where(
            InstanceTypeZone.instance_type_id == type_id,
            InstanceTypeZone.zone_id.not_in(zone_ids),
        )
    )
    kept = set(
        await session.scalars(
            select(InstanceTypeZone.zone_id).where(InstanceTypeZone.instance_type_id == type_id)
        )
    )
    session.add_all(
        InstanceTypeZone(instance_type_id=type_id, zone_id=z.id) for z in zones if z.id not in kept
    )
    await session.flush()


async def types_in_zone(*, session: AsyncSession, zone_id: uuid.UUID) -> list[InstanceType]:
    """The instance types a zone currently offers, by code."""
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


def request_sync(*, session: AsyncSession, organization_id: uuid.UUID) -> None:
    """Queue a CMD:SYNC_CATALOG for after the route's commit."""
    publish_after_commit(session, Envelope(type=CMD_SYNC_CATALOG, organization_id=organization_id))
