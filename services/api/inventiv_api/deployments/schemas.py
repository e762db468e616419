"""What a deployment request carries."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

# More zones than any provider sells a type in: a bound, not a policy.
MAX_FALLBACK_ZONES = 20


class DeploymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instance_type_id: uuid.UUID
    zone_id: uuid.UUID
    model_id: uuid.UUID
    # Where to go, in this order, if the provider is out of stock of the type in
    # `zone_id`: zones of the same provider offering the type...
    fallback_zone_ids: list[uuid.UUID] | None = Field(default=None, max_length=MAX_FALLBACK_ZONES)
    # ... or every other zone of `zone_id`'s region offering it, by code.
    any_zone_in_region: StrictBool = False

    @model_validator(mode="after")
    def _one_way_to_fall_back(self) -> DeploymentIn:
        if self.fallback_zone_ids and self.any_zone_in_region:
            raise ValueError("give fallback_zone_ids or any_zone_in_region, not both")
        return self
