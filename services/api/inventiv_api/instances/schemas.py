"""What the api says about instances, and what it accepts about them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool

from inventiv_api.activation import Activated


class InstanceOut(Activated):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    organization_id: uuid.UUID | None
    provider_id: uuid.UUID
    zone_id: uuid.UUID | None
    # Zones still allowed if the provider is out of stock in `zone_id`, in order.
    fallback_zone_ids: list[uuid.UUID] | None = None
    instance_type_id: uuid.UUID | None
    model_id: uuid.UUID | None
    status: str
    progress_percent: int
    progress_steps: list[dict[str, Any]]
    error_code: str | None
    error_message: str | None
    provider_instance_id: str | None
    ip_address: str | None
    worker_status: str | None
    worker_phase: str | None
    worker_last_heartbeat: datetime | None
    worker_agent_version: str | None
    worker_version_mismatch: bool
    is_archived: bool
    terminate_requested_at: datetime | None
    ready_at: datetime | None
    terminated_at: datetime | None
    created_at: datetime
    updated_at: datetime


class VolumeOut(BaseModel):
    """A volume of an instance, as tracked: `delete_on_terminate` false keeps it when
    the instance is terminated (status `kept`)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    instance_id: uuid.UUID | None
    provider_volume_id: str
    name: str | None
    zone_code: str | None
    volume_type: str | None
    size_gb: int | None
    is_boot: bool
    delete_on_terminate: bool
    status: str
    created_at: datetime
    deleted_at: datetime | None


class InstancePage(BaseModel):
    items: list[InstanceOut]
    total: int
    limit: int
    offset: int


class InstanceMetricsOut(BaseModel):
    """What the gateway served through one instance, since it first did."""

    instance_id: uuid.UUID
    total_requests: int = 0
    successful_requests: int = 0
    failed_requests: int = 0
    success_rate: float | None = None  # None before the first request
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    first_request_at: datetime | None = None
    last_request_at: datetime | None = None


class VolumeRetention(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delete_on_terminate: StrictBool
