from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class ProviderSettingsOut(BaseModel):
    provider: str
    configured: bool
    missing: list[str]
    # Masked: only the last characters of each value are shown.
    values: dict[str, str]
    updated_at: datetime | None


class ProviderSettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A null value removes that field.
    values: dict[str, str | None] = Field(max_length=20)


class ProviderConfigStatus(BaseModel):
    provider: str
    name: str
    configured: bool
    missing: list[str]
