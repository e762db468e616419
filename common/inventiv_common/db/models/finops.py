"""The `finops` schema: per-minute costs, their rollups, token usage and budgets.

One row per instance and minute for actual, cumulative and forecast costs, keyed so
a minute computed twice is stored once. The hour and day tables are kept by the same
transaction that writes the minutes, so they always equal the sum of their minutes.
Amounts are exact decimals.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from inventiv_common.db.models.base import Base, created_at_col, tstz, updated_at_col

SCHEMA = "finops"
AMOUNT = Numeric(20, 10)


class _Dimensions:
    """Where a cost belongs, copied onto every cost row so reports need no join."""

    organization_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    provider_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    region_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    zone_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    instance_type_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


class _MinuteCost(_Dimensions):
    """Columns every per-minute cost table shares."""

    instance_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    bucket_minute: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)


class CostActualMinute(_MinuteCost, Base):
    __tablename__ = "cost_actual_minute"
    __table_args__ = (
        # Reports read a workspace's range: an index-only scan with what they sum.
        Index(
            "ix_finops_cost_actual_minute_org_bucket",
            "organization_id",
            "bucket_minute",
            postgresql_include=["instance_id", "cost_eur"],
        ),
        {"schema": SCHEMA},
    )

    cost_eur: Mapped[Decimal] = mapped_column(AMOUNT)


class CostCumulativeMinute(_MinuteCost, Base):
    __tablename__ = "cost_cumulative_minute"
    __table_args__ = ({"schema": SCHEMA},)

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
        # The records finops has not priced yet, oldest first.
        Index(
            "ix_finops_inference_usage_unpriced",
            "occurred_at",
            postgresql_where=text("input_cost_eur IS NULL"),
        ),
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


class CostActualHour(_Dimensions, Base):
    """The minutes of one instance and hour, summed."""

    __tablename__ = "cost_actual_hour"
    __table_args__ = (
        Index(
            "ix_finops_cost_actual_hour_org_bucket",
            "organization_id",
            "bucket_hour",
            postgresql_include=["instance_id", "cost_eur"],
        ),
        {"schema": SCHEMA},
    )

    instance_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    bucket_hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    cost_eur: Mapped[Decimal] = mapped_column(AMOUNT)
    minutes: Mapped[int] = mapped_column(Integer)


class CostActualDay(_Dimensions, Base):
    """The minutes of one instance and UTC day, summed."""

    __tablename__ = "cost_actual_day"
    __table_args__ = (
        Index(
            "ix_finops_cost_actual_day_org_bucket",
            "organization_id",
            "bucket_day",
            postgresql_include=["instance_id", "cost_eur"],
        ),
        {"schema": SCHEMA},
    )

    instance_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    bucket_day: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    cost_eur: Mapped[Decimal] = mapped_column(AMOUNT)
    minutes: Mapped[int] = mapped_column(Integer)


class CostOrgBucket(Base):
    """An organization's cost per minute, hour and day (all its instances together):
    the series of its dashboards read a few rows, however many instances it runs."""

    __tablename__ = "cost_org_bucket"
    __table_args__ = ({"schema": SCHEMA},)

    organization_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    grain: Mapped[str] = mapped_column(String(8), primary_key=True)  # minute | hour | day
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    cost_eur: Mapped[Decimal] = mapped_column(AMOUNT)
    # Instance-minutes billed in the bucket.
    minutes: Mapped[int] = mapped_column(Integer)


class BillingState(Base):
    """How far each instance is billed: the minute job's own bookmark, so a pass after
    downtime knows exactly which minutes are missing."""

    __tablename__ = "billing_state"
    __table_args__ = (
        Index("ix_finops_billing_state_open", "instance_id", postgresql_where=text("NOT closed")),
        {"schema": SCHEMA},
    )

    instance_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    # Every minute before this one is billed.
    billed_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    minutes_billed: Mapped[int] = mapped_column(Integer)
    cumulative_cost_eur: Mapped[Decimal] = mapped_column(AMOUNT)
    # The instance ended and its last minute is billed: never looked at again.
    closed: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    updated_at: Mapped[updated_at_col]


class BillingProgress(Base):
    """One row: the minute every billable minute before which is billed. Reports end
    their windows here, so they show complete minutes only."""

    __tablename__ = "billing_progress"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        {"schema": SCHEMA},
    )

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default=text("1"))
    billed_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[updated_at_col]


class UsageHour(Base):
    """Priced token usage per hour, instance, model, API key and user."""

    __tablename__ = "usage_hour"
    __table_args__ = (
        Index(
            "uq_finops_usage_hour_key",
            "bucket_hour",
            "organization_id",
            "instance_id",
            "model_id",
            "api_key_id",
            "user_id",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
        Index("ix_finops_usage_hour_org_bucket", "organization_id", "bucket_hour"),
        Index("ix_finops_usage_hour_instance_bucket", "instance_id", "bucket_hour"),
        {"schema": SCHEMA},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    bucket_hour: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    organization_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    instance_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    model_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    model_name: Mapped[str] = mapped_column(String(300))
    requests: Mapped[int] = mapped_column(BigInteger)
    failed_requests: Mapped[int] = mapped_column(BigInteger)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    completion_tokens: Mapped[int] = mapped_column(BigInteger)
    input_cost_eur: Mapped[Decimal] = mapped_column(AMOUNT)
    output_cost_eur: Mapped[Decimal] = mapped_column(AMOUNT)


class Budget(Base):
    """An organization's monthly budget for the GPU cost of its instances."""

    __tablename__ = "budgets"
    __table_args__ = ({"schema": SCHEMA},)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        primary_key=True,
    )
    monthly_budget_eur: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    # Percentages of the budget; each fires once a month.
    alert_thresholds: Mapped[list[int]] = mapped_column(
        ARRAY(Integer), server_default=text("'{50,80,100}'")
    )
    # Past the budget: no new deployment; and, with stop_at_cap, running ones stop.
    hard_cap: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    stop_at_cap: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    updated_by_user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[created_at_col]
    updated_at: Mapped[updated_at_col]


class BudgetAlert(Base):
    """A threshold crossed in a month; its key makes each fire once."""

    __tablename__ = "budget_alerts"
    __table_args__ = ({"schema": SCHEMA},)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        primary_key=True,
    )
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    threshold_percent: Mapped[int] = mapped_column(Integer, primary_key=True)
    spent_eur: Mapped[Decimal] = mapped_column(AMOUNT)
    budget_eur: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    fired_at: Mapped[tstz]
