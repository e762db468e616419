from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from inventiv_api.types import Moment, Name, WholeNumber

# Whole numbers only (types.WholeNumber).
RequestsPerMinute = Annotated[int, Field(ge=1, le=1_000_000), WholeNumber]
TokensPerMinute = Annotated[int, Field(ge=1, le=1_000_000_000), WholeNumber]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(min_length=1, max_length=200)
    expires_at: Moment | None = None
    # Model ids (as clients send them) this key may use; null means all of the workspace's.
    allowed_models: list[Annotated[str, Field(min_length=1, max_length=300)]] | None = Field(
        default=None, max_length=100
    )
    requests_per_minute: RequestsPerMinute | None = None
    tokens_per_minute: TokensPerMinute | None = None


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    key_prefix: str
    created_by_user_id: uuid.UUID | None
    allowed_models: list[str] | None
    requests_per_minute: int | None
    tokens_per_minute: int | None
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


class ApiKeyCreated(ApiKeyOut):
    # The only time the secret is shown.
    key: str
