"""Where an instance goes when the provider is out of stock of its type in its zone.

A deployment may allow other zones (`instances.fallback_zone_ids`, in order). After a
create refused for want of stock, the instance moves to the first of them that still
offers the type, switched on and not in shortage by the last catalog sync; zones passed
over on the way are dropped with the one chosen, so the list only ever shrinks and a
deployment cannot circle between zones. The zones already found out of stock are kept
in the instance's provider metadata (`out_of_stock_in`), for the reason it fails with
once no zone is left.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_common.db.models import Instance, InstanceTypeZone, Zone
from inventiv_common.providers.base import OUT_OF_STOCK

TRIED = "out_of_stock_in"


@dataclass(frozen=True)
class Move:
    zone_id: uuid.UUID
    zone: str
    # Allowed zones passed over (no longer offered, switched off, or in shortage).
    skipped: tuple[str, ...]
    # What is left to try after this one.
    remaining: list[uuid.UUID]


def out_of_stock(outcome: object) -> bool:
    return getattr(outcome, "code", None) == OUT_OF_STOCK


def zones_tried(instance: Instance, zone: str) -> list[str]:
    """The zones found out of stock so far, this one included."""
    tried = [str(z) for z in (instance.provider_metadata or {}).get(TRIED, [])]
    return tried if zone in tried else [*tried, zone]


def remember_tried(instance: Instance, zone: str) -> list[str]:
    tried = zones_tried(instance, zone)
    # A new dict: the ORM does not see changes made inside a JSONB value.
    instance.provider_metadata = {**(instance.provider_metadata or {}), TRIED: tried}
    return tried


async def next_zones(
    session: AsyncSession, instances: Sequence[Instance], outcomes: Sequence[object]
) -> dict[uuid.UUID, Move | None]:
    """For each instance whose create was refused for want of stock and whose
    deployment allowed other zones: where it goes next, or None when no zone is left."""
    asking = [
        i
        for i, outcome in zip(instances, outcomes, strict=True)
        if out_of_stock(outcome) and i.fallback_zone_ids is not None
    ]
    if not asking:
        return {}
    wanted = {z for i in asking for z in i.fallback_zone_ids or []}
    rows = await session.execute(
        select(InstanceTypeZone.instance_type_id, Zone.id, Zone.code)
        .join(Zone, Zone.id == InstanceTypeZone.zone_id)
        .where(
            InstanceTypeZone.instance_type_id.in_({i.instance_type_id for i in asking}),
            InstanceTypeZone.zone_id.in_(wanted),
            InstanceTypeZone.is_available,
            InstanceTypeZone.availability != "shortage",
            Zone.is_active,
        )
    )
    usable: dict[tuple[uuid.UUID | None, uuid.UUID], str] = {
        (type_id, zone_id): code for type_id, zone_id, code in rows
    }
    codes = {
        zone_id: code
        for zone_id, code in await session.execute(
            select(Zone.id, Zone.code).where(Zone.id.in_(wanted))
        )
    }
    moves: dict[uuid.UUID, Move | None] = {}
    for instance in asking:
        allowed = list(instance.fallback_zone_ids or [])
        moves[instance.id] = None
        for index, zone_id in enumerate(allowed):
            code = usable.get((instance.instance_type_id, zone_id))
            if code is not None:
                moves[instance.id] = Move(
                    zone_id=zone_id,
                    zone=code,
                    skipped=tuple(codes.get(z, str(z)) for z in allowed[:index]),
                    remaining=allowed[index + 1 :],
                )
                break
    return moves
