"""The `finops` schema: per-minute costs and detailed token usage.

One row per instance and minute for actual, cumulative and forecast costs, keyed so
a recomputed minute overwrites rather than duplicates. Amounts are exact decimals.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, DateTime, Identity, Index, Integer, Numeric, String
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from inventiv_common.db.models.base import Base

SCHEMA = "finops"
AMOUNT = Numeric(20, 10)


class _MinuteCost:
    """Columns every per-minute cost table shares."""

    instance_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    bucket_minute: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    organization_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    provider_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    region_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    zone_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    instance_type_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


class CostActualMinute(_MinuteCost, Base):
    __tablename__ = "cost_actual_minute"
    __table_args__ = (
        Index("ix_finops_cost_actual_minute_bucket", "bucket_minute"),
        {"schema": SCHEMA},
    )

    cost_eur: Mapped[Decimal] = mapped_column(AMOUNT)


class CostCumulativeMinute(_MinuteCost, Base):
    __tablename__ = "cost_cumulative_minute"
    __table_args__ = (
        Index("ix_finops_cost_cumulative_minute_bucket", "bucket_minute"),
        {"schema": SCHEMA},
    )

    cumulative_cost_eur: Mapped[Decimal] = mapped_column(AMOUNT)


class CostForecastMinute(_MinuteCost, Base):
    __tablename__ = "cost_forecast_minute"
    __table_args__ = (
        Index("ix_finops_cost_forecast_minute_bucket", "bucket_minute"),
        {"schema": SCHEMA},
    )

    burn_rate_eur_per_hour: Mapped[Decimal] = mapped_column(AMOUNT)
    forecast_eur_1h: Mapped[Decimal] = mapped_column(AMOUNT)
    forecast_eur_1d: Mapped[Decimal] = mapped_column(AMOUNT)
    forecast_eur_30d: Mapped[Decimal] = mapped_column(AMOUNT)
    forecast_eur_365d: Mapped[Decimal] = mapped_column(AMOUNT)


class InferenceUsage(Base):
    """One row per inference request served through the gateway."""

    __tablename__ = "inference_usage"
    __table_args__ = (
        Index("ix_finops_inference_usage_org_time", "organization_id", "occurred_at"),
        Index("ix_finops_inference_usage_instance_time", "instance_id", "occurred_at"),
        Index("uq_finops_inference_usage_request", "request_id", "occurred_at", unique=True),
        {"schema": SCHEMA},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    # The gateway's own request id: a retried batch cannot insert a record twice.
    request_id: Mapped[str] = mapped_column(String(64))
    organization_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    instance_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    model_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    model_name: Mapped[str] = mapped_column(String(300))
    endpoint: Mapped[str] = mapped_column(String(64))
    stream: Mapped[bool] = mapped_column(Boolean)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    total_tokens: Mapped[int] = mapped_column(Integer)
    time_to_first_token_ms: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))
    input_cost_eur: Mapped[Decimal | None] = mapped_column(AMOUNT)
    output_cost_eur: Mapped[Decimal | None] = mapped_column(AMOUNT)
