"""Catalog sync: instance types, prices, zone offers and stock as each provider reports them.

Runs every CATALOG_SYNC_INTERVAL_S and when CMD:SYNC_CATALOG asks. Only what the
provider is the authority on changes: an instance type's hourly price and sizes (GPUs,
GPU memory, vCPUs, RAM, where the provider says them), whether it is offered in a zone
(`instance_type_zones.is_available`; a withdrawn offer takes no new deployment), and
its stock there (`availability`: available, scarce, or shortage, which takes no new
deployment either). What operators own (`is_active` flags, names, models) is left alone.

A type the catalog does not know is added switched off, for an operator to review and
switch on, when the provider says what it is (its GPUs); one it says nothing about (the
Mock provider's extra types) is only reported, as are zones the catalog does not know,
since their regions are not known.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_common import actions
from inventiv_common.actions import log_action
from inventiv_common.db.models import InstanceType, InstanceTypeZone, Provider, Region, Zone
from inventiv_common.providers.base import CatalogType, ProviderError
from inventiv_orchestrator.context import Context
from inventiv_orchestrator.loops.base import Loop

# The outcome's entries that are changes (the others are counts and reports).
CHANGES = (
    "prices",
    "sizes",
    "types_added",
    "offers_added",
    "offers_withdrawn",
    "availability",
)
# What a type is, as the provider says it: (its field here, the catalog's column).
SIZES = (
    ("gpu_count", "gpu_count"),
    ("gpu_memory_gb", "gpu_memory_gb"),
    ("vcpus", "vcpu_count"),
    ("ram_gb", "ram_gb"),
)
STOCK_LEVELS = ("available", "scarce", "shortage")

# The advisory lock space of catalog syncs (a seed for hashing provider codes into it).
LOCK = 0x4341_5441


class CatalogLoop(Loop):
    name = "catalog"

    def __init__(self, ctx: Context, interval_s: float) -> None:
        super().__init__(interval_s)
        self.ctx = ctx
        # Workspaces that asked for a sync: each sees its outcome in its action log.
        self._requested_by: set[uuid.UUID | None] = set()

    def request(self, organization_id: uuid.UUID | None) -> None:
        self._requested_by.add(organization_id)
        self.wake()

    async def run_once(self) -> int:
        requested_by, self._requested_by = self._requested_by or {None}, set()
        changed = 0
        for code, provider in self.ctx.providers.items():
            async with self.ctx.session_factory() as session:
                # Every replica hears CMD:SYNC_CATALOG; one syncs a provider at a time,
                # the others leave it to that one (and its log entry to the requester).
                if not await session.scalar(
                    select(func.pg_try_advisory_xact_lock(func.hashtextextended(code, LOCK)))
                ):
                    continue
                error: ProviderError | None = None
                try:
                    offered = await provider.sync_catalog()
                    if not offered:
                        # An empty answer is a provider glitch far more often than a
                        # cloud that sells nothing: withdrawing every offer would be worse.
                        raise ProviderError("the provider listed no instance type; nothing changed")
                except ProviderError as exc:
                    error = exc
                if error is None:
                    outcome = await apply_catalog(session, code, offered)
                    changed += sum(len(outcome[key]) for key in CHANGES)
                for organization_id in requested_by:
                    log_action(
                        session,
                        None,
                        actions.CATALOG_SYNC,
                        component="orchestrator",
                        status="failed" if error else "success",
                        details={"provider": code} if error else outcome,
                        error_code="provider_error" if error else None,
                        error_message=str(error) if error else None,
                        organization_id=organization_id,
                    )
                await session.commit()
        return changed


async def apply_catalog(
    session: AsyncSession, provider_code: str, offered: list[CatalogType]
) -> dict[str, Any]:
    """Bring the provider's types, prices, sizes, zone offers and stock in line with
    `offered`; returns what changed (nothing is committed here)."""
    outcome: dict[str, Any] = {
        "provider": provider_code,
        "types": len(offered),
        "prices": {},
        "sizes": {},
        "types_added": [],
        "offers_added": [],
        "offers_withdrawn": [],
        "availability": {},
        "unknown_types": [],
        "unknown_zones": [],
    }
    provider_id = await session.scalar(select(Provider.id).where(Provider.code == provider_code))
    if provider_id is None:
        outcome["unknown_types"] = sorted(t.code for t in offered)
        return outcome
    types = {
        t.code: t
        for t in await session.scalars(
            select(InstanceType).where(InstanceType.provider_id == provider_id)
        )
    }
    zones = {
        z.code: z
        for z in await session.scalars(
            select(Zone)
            .join(Region, Region.id == Zone.region_id)
            .where(Region.provider_id == provider_id)
        )
    }
    offers = {
        (o.instance_type_id, o.zone_id): o
        for o in await session.scalars(
            select(InstanceTypeZone).where(
                InstanceTypeZone.instance_type_id.in_([t.id for t in types.values()])
            )
        )
    }
    current: set[tuple[uuid.UUID, uuid.UUID]] = set()
    for item in offered:
        instance_type = types.get(item.code)
        if instance_type is None:
            if not item.gpu_count:
                outcome["unknown_types"].append(item.code)
                continue
            instance_type = _new_type(provider_id, item)
            session.add(instance_type)
            types[item.code] = instance_type
            outcome["types_added"].append(item.code)
        else:
            _follow_type(instance_type, item, outcome)
        for zone_code, level in _stock(item).items():
            zone = zones.get(zone_code)
            if zone is None:
                if zone_code not in outcome["unknown_zones"]:
                    outcome["unknown_zones"].append(zone_code)
                continue
            key = (instance_type.id, zone.id)
            current.add(key)
            offer = offers.get(key)
            where = f"{item.code}@{zone_code}"
            if offer is None:
                session.add(
                    InstanceTypeZone(
                        instance_type_id=instance_type.id,
                        zone_id=zone.id,
                        is_available=True,
                        availability=level,
                    )
                )
                outcome["offers_added"].append(where)
                continue
            if not offer.is_available:
                offer.is_available = True
                outcome["offers_added"].append(where)
            if offer.availability != level:
                outcome["availability"][where] = {"from": offer.availability, "to": level}
                offer.availability = level
    codes = {t.id: t.code for t in types.values()}
    zone_codes = {z.id: z.code for z in zones.values()}
    for key, offer in offers.items():
        if key not in current and offer.is_available:
            offer.is_available = False
            outcome["offers_withdrawn"].append(f"{codes[key[0]]}@{zone_codes.get(key[1], '?')}")
    return outcome


def _stock(item: CatalogType) -> dict[str, str]:
    """zone -> stock level, for every zone that sells the type: where it can be
    deployed now (available unless the provider says scarce) and where it is sold
    but in shortage (still offered, so the catalog says why it takes no deployment)."""
    stock = {zone: item.availability.get(zone, "available") for zone in item.zones}
    for zone, level in item.availability.items():
        stock.setdefault(zone, level)
    # A level this catalog does not know is read as the worst: better refuse a
    # deployment than promise stock the provider did not.
    return {zone: level if level in STOCK_LEVELS else "shortage" for zone, level in stock.items()}


def _new_type(provider_id: uuid.UUID, item: CatalogType) -> InstanceType:
    """A type the provider sells that the catalog lacks: switched off until an
    operator has looked at it (its name, its models, whether to sell it at all)."""
    return InstanceType(
        id=uuid.uuid4(),
        provider_id=provider_id,
        code=item.code,
        name=f"{item.code} ({item.gpu_count} GPU x {item.gpu_memory_gb} GB)",
        gpu_count=item.gpu_count,
        gpu_memory_gb=item.gpu_memory_gb,
        vcpu_count=item.vcpus,
        ram_gb=item.ram_gb,
        cost_per_hour_eur=item.hourly_price_eur,
        is_active=False,
    )


def _follow_type(instance_type: InstanceType, item: CatalogType, outcome: dict[str, Any]) -> None:
    """The price, and each size the provider says (0: not said, left as it is)."""
    if instance_type.cost_per_hour_eur != item.hourly_price_eur:
        outcome["prices"][item.code] = {
            "from": str(instance_type.cost_per_hour_eur),
            "to": str(item.hourly_price_eur),
        }
        instance_type.cost_per_hour_eur = item.hourly_price_eur
    for said, column in SIZES:
        value = getattr(item, said)
        before = getattr(instance_type, column)
        if value and value != before:
            outcome["sizes"].setdefault(item.code, {})[column] = {"from": before, "to": value}
            setattr(instance_type, column, value)
