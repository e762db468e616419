"""Time series reported by workers, and per-instance request aggregates.

The sample tables are TimescaleDB hypertables when the extension exists; their
primary keys therefore include the time column.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, SmallInteger
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from inventiv_common.db.models.base import Base, tstz, updated_at_col


def _instance_fk() -> ForeignKey:
    return ForeignKey("instances.id", ondelete="CASCADE")


class GpuSample(Base):
    __tablename__ = "gpu_samples"

    instance_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), _instance_fk(), primary_key=True
    )
    gpu_index: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    utilization_pct: Mapped[float | None] = mapped_column(Float)
    memory_used_mb: Mapped[float | None] = mapped_column(Float)
    memory_total_mb: Mapped[float | None] = mapped_column(Float)
    temperature_c: Mapped[float | None] = mapped_column(Float)
    power_w: Mapped[float | None] = mapped_column(Float)


class SystemSample(Base):
    __tablename__ = "system_samples"

    instance_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), _instance_fk(), primary_key=True
    )
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    cpu_pct: Mapped[float | None] = mapped_column(Float)
    load_1m: Mapped[float | None] = mapped_column(Float)
    memory_used_bytes: Mapped[int | None] = mapped_column(BigInteger)
    memory_total_bytes: Mapped[int | None] = mapped_column(BigInteger)
    disk_used_bytes: Mapped[int | None] = mapped_column(BigInteger)
    disk_total_bytes: Mapped[int | None] = mapped_column(BigInteger)
    net_rx_bytes: Mapped[int | None] = mapped_column(BigInteger)
    net_tx_bytes: Mapped[int | None] = mapped_column(BigInteger)


class InstanceRequestMetrics(Base):
    """Running totals per instance, bumped in batches by the gateway's meter."""

    __tablename__ = "instance_request_metrics"

    instance_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), _instance_fk(), primary_key=True
    )
    total_requests: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    successful_requests: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    failed_requests: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    total_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    first_request_at: Mapped[tstz | None]
    last_request_at: Mapped[tstz | None]
    updated_at: Mapped[updated_at_col]


__all__ = ["GpuSample", "InstanceRequestMetrics", "SystemSample"]
