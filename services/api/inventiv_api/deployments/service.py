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
            select(InstanceType, Zone, Region)
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
    instance_type, zone, region = offer
    if region.provider_id != instance_type.provider_id:
        raise ApiError(
            422, "type_not_offered", "the zone and the type belong to different providers"
        )
    if not (instance_type.is_active and zone.is_active):
        raise ApiError(422, "not_available", "this type or zone is switched off")
    model = await get_model(session=session, principal=principal, model_id=model_id)
    if not (model.is_active and model.technical_activation and model.economic_activation):
        raise ApiError(422, "model_not_activated", f"model {model.model_id} is not activated")
    instance = Instance(
        id=uuid.uuid4(),
        organization_id=org_id,
        created_by_user_id=principal.user_id,
        provider_id=instance_type.provider_id,
        zone_id=zone.id,
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
        details={"type": instance_type.code, "zone": zone.code, "model": model.model_id},
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
