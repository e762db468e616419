"""The provider catalog: providers, regions, zones, instance types and models."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column, validates

from inventiv_common.db.models.base import Base, created_at_col, updated_at_col, uuid_pk

# Money is stored exactly: hourly prices to the micro-euro.
PRICE = Numeric(14, 6)
# The context length, in tokens, of a model created without one (migration 0007 gave it
# to the models that had none).
DEFAULT_CONTEXT_LENGTH = 8192


class Provider(Base):
    __tablename__ = "providers"

    id: Mapped[uuid.UUID] = uuid_pk()
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[created_at_col]
    updated_at: Mapped[updated_at_col]


class Region(Base):
    __tablename__ = "regions"
    __table_args__ = (UniqueConstraint("provider_id", "code", name="uq_regions_provider_code"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    provider_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("providers.id", ondelete="CASCADE")
    )
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[created_at_col]


class Zone(Base):
    __tablename__ = "zones"
    __table_args__ = (UniqueConstraint("region_id", "code", name="uq_zones_region_code"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    region_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("regions.id", ondelete="CASCADE")
    )
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[created_at_col]


class InstanceType(Base):
    __tablename__ = "instance_types"
    __table_args__ = (
        UniqueConstraint("provider_id", "code", name="uq_instance_types_provider_code"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    provider_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("providers.id", ondelete="CASCADE")
    )
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    gpu_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    gpu_model: Mapped[str | None] = mapped_column(String(64))
    gpu_memory_gb: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    vcpu_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    ram_gb: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    bandwidth_bps: Mapped[int | None] = mapped_column(BigInteger)
    cost_per_hour_eur: Mapped[Decimal] = mapped_column(PRICE)
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[created_at_col]
    updated_at: Mapped[updated_at_col]


class InstanceTypeZone(Base):
    __tablename__ = "instance_type_zones"
    __table_args__ = (
        CheckConstraint("availability IN ('available', 'scarce', 'shortage')", name="availability"),
    )

    instance_type_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("instance_types.id", ondelete="CASCADE"), primary_key=True
    )
    zone_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("zones.id", ondelete="CASCADE"), primary_key=True
    )
    is_available: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # The provider's word on its stock here: available | scarce | shortage (no deployment).
    availability: Mapped[str] = mapped_column(String(16), server_default=text("'available'"))


class Model(Base):
    """An LLM that can be deployed: public (no organization) or private to one."""

    __tablename__ = "models"
    __table_args__ = (
        CheckConstraint("data_volume_gb BETWEEN 10 AND 10000", name="data_volume_gb"),
        # Public models are unique by their engine id; private ones per organization.
        Index(
            "uq_models_public_model_id",
            "model_id",
            unique=True,
            postgresql_where=text("organization_id IS NULL"),
        ),
        Index(
            "uq_models_org_model_id",
            "organization_id",
            "model_id",
            unique=True,
            postgresql_where=text("organization_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(200))
    # What the engine serves and clients send as `model` (e.g. a Hugging Face repo id).
    model_id: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(32), server_default=text("'chat'"))
    required_vram_gb: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # In tokens. The gateway refuses a request for more (max_tokens, the prompt's size).
    context_length: Mapped[int] = mapped_column(
        Integer, server_default=text(str(DEFAULT_CONTEXT_LENGTH))
    )
    price_per_1k_input_tokens_eur: Mapped[Decimal] = mapped_column(PRICE, server_default=text("0"))
    price_per_1k_output_tokens_eur: Mapped[Decimal] = mapped_column(PRICE, server_default=text("0"))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    technical_activation: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    economic_activation: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    engine_args: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    # The block volume holding the model's cache on its VM, where the provider makes disks.
    data_volume_gb: Mapped[int] = mapped_column(Integer, server_default=text("200"))
    # Gated on Hugging Face: its VM gets the platform's HF token (in user data only).
    requires_hf_token: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[created_at_col]
    updated_at: Mapped[updated_at_col]

    @validates("context_length")
    def _context_length_or_default(self, _key: str, value: int | None) -> int:
        # A model created (or updated) without a context length still has one.
        return DEFAULT_CONTEXT_LENGTH if value is None else value
