"""Deployments: checking that a model may be deployed on a type in a zone, and recording
the instance that asks the orchestrator for it. Nothing commits; the command goes out
after the route's commit."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.errors import ApiError, not_found
from inventiv_api.models.service import get_model
from inventiv_api.security.principal import Principal
from inventiv_api.security.workspace import current_org_id
from inventiv_common import actions, instance_secrets
from inventiv_common.actions import log_action
from inventiv_common.bus import Envelope, publish_after_commit
from inventiv_common.crypto import KeyRing
from inventiv_common.db.models import (
    Instance,
    InstanceType,
    InstanceTypeZone,
    Region,
    Zone,
)
from inventiv_common.finops import cap_reached, utcnow
from inventiv_common.instance_requests import first_steps
from inventiv_common.lifecycle import InstanceStatus
from inventiv_common.messages import CMD_PROVISION


async def create(
    *,
    session: AsyncSession,
    keyring: KeyRing,
    principal: Principal,
    instance_type_id: uuid.UUID,
    zone_id: uuid.UUID,
    model_id: uuid.UUID,
    correlation_id: str | None,
    fallback_zone_ids: list[uuid.UUID] | None = None,
    any_zone_in_region: bool = False,
) -> Instance:
    org_id = current_org_id(principal)
    capped = await cap_reached(session, org_id, utcnow())
    if capped is not None:
        budget, spent = capped
        raise ApiError(
            402,
            "budget_cap_reached",
            f"this organization has spent {spent:.2f} EUR of its monthly budget of "
            f"{budget.monthly_budget_eur} EUR and has a hard cap: no new deployment this "
            "month unless the budget is raised or the cap lifted",
        )
    offer = (
        await session.execute(
            select(InstanceType, Zone, Region, InstanceTypeZone.availability)
            .join(InstanceTypeZone, InstanceTypeZone.instance_type_id == InstanceType.id)
            .join(Zone, Zone.id == InstanceTypeZone.zone_id)
            .join(Region, Region.id == Zone.region_id)
            .where(
                InstanceType.id == instance_type_id,
                Zone.id == zone_id,
                # Withdrawn by the provider (catalog sync): no new deployment there.
                InstanceTypeZone.is_available,
            )
        )
    ).one_or_none()
    if offer is None:
        known_type = await session.get(InstanceType, instance_type_id)
        known_zone = await session.get(Zone, zone_id)
        if known_type is None:
            raise not_found("instance type")
        if known_zone is None:
            raise not_found("zone")
        raise ApiError(
            422, "type_not_offered", f"{known_type.code} is not offered in {known_zone.code}"
        )
    instance_type, zone, region, availability = offer
    if region.provider_id != instance_type.provider_id:
        raise ApiError(
            422, "type_not_offered", "the zone and the type belong to different providers"
        )
    if not (instance_type.is_active and zone.is_active):
        raise ApiError(422, "not_available", "this type or zone is switched off")
    if availability == "shortage":
        elsewhere = [z.code for z in await _offering(session, instance_type, exclude=zone.id)]
        raise ApiError(
            409,
            "type_out_of_stock",
            f"the provider has no stock of {instance_type.code} in {zone.code} (shortage); "
            + (f"it has some in {', '.join(elsewhere)}" if elsewhere else "nor in any other zone"),
            details={"zone": zone.code, "available_in": elsewhere},
        )
    fallbacks = await _fallbacks(
        session, instance_type, zone, fallback_zone_ids, any_zone_in_region
    )
    model = await get_model(session=session, principal=principal, model_id=model_id)
    if not (model.is_active and model.technical_activation and model.economic_activation):
        raise ApiError(422, "model_not_activated", f"model {model.model_id} is not activated")
    instance = Instance(
        id=uuid.uuid4(),
        organization_id=org_id,
        created_by_user_id=principal.user_id,
        provider_id=instance_type.provider_id,
        zone_id=zone.id,
        fallback_zone_ids=fallbacks,
        instance_type_id=instance_type.id,
        model_id=model.id,
        status=InstanceStatus.provisioning.value,
        progress_percent=0,
        progress_steps=first_steps(),
    )
    # Sealed now, in the row's first write: the orchestrator hands them to the provider
    # without a write of its own first.
    instance_secrets.ensure(instance, keyring)
    session.add(instance)
    await session.flush()
    log_action(
        session,
        instance,
        actions.DEPLOYMENT_REQUESTED,
        component="api",
        user_id=principal.user_id,
        correlation_id=correlation_id,
        details={
            "type": instance_type.code,
            "zone": zone.code,
            "model": model.model_id,
            **({"fallback_zone_ids": [str(z) for z in fallbacks]} if fallbacks else {}),
        },
    )
    publish_after_commit(
        session,
        Envelope(
            type=CMD_PROVISION,
            organization_id=org_id,
            correlation_id=correlation_id,
            payload={"instance_id": str(instance.id)},
        ),
    )
    return instance


async def _offering(
    session: AsyncSession,
    instance_type: InstanceType,
    *,
    exclude: uuid.UUID,
    region_id: uuid.UUID | None = None,
    with_shortage: bool = False,
) -> list[Zone]:
    """The switched-on zones offering the type now (in `region_id`, if given), by code."""
    query = (
        select(Zone)
        .join(InstanceTypeZone, InstanceTypeZone.zone_id == Zone.id)
        .join(Region, Region.id == Zone.region_id)
        .where(
            InstanceTypeZone.instance_type_id == instance_type.id,
            InstanceTypeZone.is_available,
            Zone.is_active,
            Zone.id != exclude,
            Region.provider_id == instance_type.provider_id,
        )
        .order_by(Zone.code)
    )
    if region_id is not None:
        query = query.where(Zone.region_id == region_id)
    if not with_shortage:
        query = query.where(InstanceTypeZone.availability != "shortage")
    return list(await session.scalars(query))


async def _fallbacks(
    session: AsyncSession,
    instance_type: InstanceType,
    zone: Zone,
    asked: list[uuid.UUID] | None,
    any_zone_in_region: bool,
) -> list[uuid.UUID] | None:
    """The zones the instance may move to if its own is out of stock, in order. A zone
    in shortage now may be listed: stock comes back, and the orchestrator skips a zone
    still in shortage when the time comes."""
    if any_zone_in_region:
        offering = await _offering(
            session, instance_type, exclude=zone.id, region_id=zone.region_id, with_shortage=True
        )
        return [z.id for z in offering]
    if not asked:
        return None
    if len(set(asked)) != len(asked):
        raise ApiError(422, "invalid_fallback_zones", "fallback_zone_ids lists a zone twice")
    if zone.id in asked:
        raise ApiError(
            422, "invalid_fallback_zones", "fallback_zone_ids lists the deployment's own zone"
        )
    offered = {
        z.id for z in await _offering(session, instance_type, exclude=zone.id, with_shortage=True)
    }
    missing = [str(z) for z in asked if z not in offered]
    if missing:
        raise ApiError(
            422,
            "fallback_zone_not_offered",
            f"{instance_type.code} is not offered in these zones (unknown, switched off, "
            f"or of another provider): {', '.join(missing)}",
            details={"zone_ids": missing},
        )
    return list(asked)
