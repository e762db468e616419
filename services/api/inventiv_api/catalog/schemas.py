"""What the api says about the provider catalog, and the changes it accepts."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from inventiv_api.types import Name, Price


class ProviderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    code: str
    name: str
    description: str | None
    is_active: bool


class RegionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    provider_id: uuid.UUID
    code: str
    name: str
    is_active: bool


class ZoneOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    region_id: uuid.UUID
    code: str
    name: str
    is_active: bool


# The provider's word on its stock of a type in a zone; `shortage` takes no deployment.
Availability = Literal["available", "scarce", "shortage"]


class TypeZoneOut(ZoneOut):
    """A zone that sells an instance type: whether it is offered now (a withdrawn
    offer takes no deployment) and the provider's stock there."""

    is_available: bool
    availability: Availability


class InstanceTypeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    provider_id: uuid.UUID
    code: str
    name: str
    gpu_count: int
    gpu_model: str | None
    gpu_memory_gb: int
    vcpu_count: int
    ram_gb: int
    cost_per_hour_eur: Decimal
    is_active: bool
    # zone code -> stock, for each zone offering the type now.
    availability: dict[str, Availability] = Field(default_factory=dict)


class CatalogUpdate(BaseModel):
    """One entry of a PUT on a catalog list: switch it on or off, rename it."""

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    is_active: StrictBool | None = None
    name: Name | None = Field(default=None, min_length=1, max_length=200)


class InstanceTypeUpdate(CatalogUpdate):
    cost_per_hour_eur: Price | None = None


class TypeZonesUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    zone_ids: list[uuid.UUID] = Field(max_length=500)
