"""What the api says about the action log and the action type catalog."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class ActionLogOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    action_type: str
    component: str
    status: str
    instance_id: uuid.UUID | None
    user_id: uuid.UUID | None
    correlation_id: str | None
    instance_status_before: str | None
    instance_status_after: str | None
    error_code: str | None
    error_message: str | None
    details: dict[str, Any] | None
    # How long the action took, where it was timed (provider steps and creates).
    duration_ms: int | None
    created_at: datetime
    completed_at: datetime | None


class ActionLogPage(BaseModel):
    items: list[ActionLogOut]
    total: int
    limit: int
    offset: int
    by_type: dict[str, int]
    by_status: dict[str, int]


class ActionTypeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    label: str
    category: str
    color: str
    icon: str
