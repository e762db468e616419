"""What the api says about models."""

from __future__ import annotations

import uuid
from decimal import Decimal

from pydantic import ConfigDict

from inventiv_api.activation import Activated


class ModelOut(Activated):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    organization_id: uuid.UUID | None
    name: str
    model_id: str
    kind: str
    required_vram_gb: int
    context_length: int | None
    price_per_1k_input_tokens_eur: Decimal
    price_per_1k_output_tokens_eur: Decimal
    is_active: bool
