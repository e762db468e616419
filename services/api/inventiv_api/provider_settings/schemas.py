"""What /provider_settings reads and accepts."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonValue

from inventiv_common.provider_credentials import CREDENTIAL_FIELDS

# Every provider's credential fields, for the document.
KNOWN_FIELDS: list[JsonValue] = [
    field for field in sorted({f for fields in CREDENTIAL_FIELDS.values() for f in fields})
]
MAX_VALUE_LENGTH = 4096  # what service.update accepts per value


class ProviderSettingsOut(BaseModel):
    provider: str
    configured: bool
    missing: list[str]
    # Masked: only the last characters of each value are shown.
    values: dict[str, str]
    updated_at: datetime | None
    # Whether the provider accepted the stored values at their last check since they
    # changed: `pending` until one has answered; null when there is nothing to check.
    verification: Literal["verified", "refused", "pending"] | None
    last_verified_at: datetime | None


class ProviderSettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A null value removes that field. Which fields there are depends on the provider
    # named in the path; the document names every provider's (one body schema serves
    # them all), and the route refuses another provider's with a 422 `unknown_fields`.
    values: dict[str, str | None] = Field(
        max_length=20,
        json_schema_extra={
            "propertyNames": {"enum": KNOWN_FIELDS},
            "additionalProperties": {
                "anyOf": [
                    {"type": "string", "minLength": 1, "maxLength": MAX_VALUE_LENGTH},
                    {"type": "null"},
                ]
            },
        },
    )


class ProviderConfigStatus(BaseModel):
    provider: str
    name: str
    # The organization's own credentials (an organization without them deploys with
    # the platform's, when the platform has some).
    configured: bool
    missing: list[str]
    verified: bool
    verification: Literal["verified", "refused", "pending"] | None
    # The provider's reason, when it refused the stored values or could not be asked.
    verification_reason: str | None
    # The latest check the provider passed for this organization's stored values.
    last_verified_at: datetime | None
