"""What a deployment request carries."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict


class DeploymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instance_type_id: uuid.UUID
    zone_id: uuid.UUID
    model_id: uuid.UUID
