"""What the api says about models, and the models an organization may add or change."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from inventiv_api.activation import Activated
from inventiv_api.types import Name, Price, WholeNumber

# Whole numbers only (types.WholeNumber); a model's memory need and context, in bounds.
VramGb = Annotated[int, Field(ge=0, le=10_000), WholeNumber]
ContextLength = Annotated[int, Field(ge=1, le=10_000_000), WholeNumber]
# The model cache's disk on its VM, where the provider makes real disks.
DataVolumeGb = Annotated[int, Field(ge=10, le=10_000), WholeNumber]


class ModelOut(Activated):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    organization_id: uuid.UUID | None
    name: str
    model_id: str
    kind: str
    required_vram_gb: int
    context_length: int  # tokens; every model has one (8,192 unless set)
    data_volume_gb: int
    requires_hf_token: bool
    price_per_1k_input_tokens_eur: Decimal
    price_per_1k_output_tokens_eur: Decimal
    is_active: bool


class ModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(min_length=1, max_length=200)
    model_id: str = Field(min_length=1, max_length=300, pattern=r"^[A-Za-z0-9._\-/:]+$")
    kind: str = Field(default="chat", pattern="^(chat|embedding)$")
    required_vram_gb: VramGb = 0
    # Omitted: 8,192 tokens, which the gateway then enforces like any other.
    context_length: ContextLength | None = None
    data_volume_gb: DataVolumeGb = 200
    # Gated on Hugging Face: its VMs are given the platform's HF token.
    requires_hf_token: StrictBool = False
    price_per_1k_input_tokens_eur: Price = Decimal(0)
    price_per_1k_output_tokens_eur: Price = Decimal(0)


class ModelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = Field(default=None, min_length=1, max_length=200)
    required_vram_gb: VramGb | None = None
    context_length: ContextLength | None = None
    data_volume_gb: DataVolumeGb | None = None
    requires_hf_token: StrictBool | None = None
    price_per_1k_input_tokens_eur: Price | None = None
    price_per_1k_output_tokens_eur: Price | None = None
    is_active: StrictBool | None = None
