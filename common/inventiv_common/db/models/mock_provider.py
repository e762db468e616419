"""What the Mock provider "owns", kept in PostgreSQL like a cloud keeps its inventory.

A mock server is a runtime (a worker agent and a mock engine as local processes, a
Docker container pair, or nothing at all in simulated mode); its volumes are rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, Integer, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from inventiv_common.db.models.base import Base, tstz


class MockServer(Base):
    __tablename__ = "mock_servers"
    __table_args__ = (
        # Names are our instance ids: one live server per name, like a tag lookup.
        Index(
            "uq_mock_servers_live_name",
            "name",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    zone: Mapped[str] = mapped_column(String(64))
    commercial_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), server_default=text("'starting'"))
    runtime: Mapped[str] = mapped_column(String(32))
    ip_address: Mapped[str | None] = mapped_column(String(64))
    health_port: Mapped[int | None] = mapped_column(Integer)
    engine_port: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    deleted_at: Mapped[tstz | None]


class MockVolume(Base):
    __tablename__ = "mock_volumes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    server_id: Mapped[str | None] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    zone: Mapped[str] = mapped_column(String(64))
    size_gb: Mapped[int] = mapped_column(Integer)
    volume_type: Mapped[str] = mapped_column(String(32), server_default=text("'b_ssd'"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    deleted_at: Mapped[tstz | None]
