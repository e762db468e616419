"""Instances, their volumes, their worker tokens, and the action log."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from inventiv_common.db.models.base import Base, created_at_col, tstz, updated_at_col, uuid_pk
from inventiv_common.lifecycle import STATUS_CHECK_SQL


def _fk(target: str, ondelete: str = "RESTRICT") -> Any:
    return ForeignKey(target, ondelete=ondelete)


class Instance(Base):
    __tablename__ = "instances"
    __table_args__ = (
        CheckConstraint(STATUS_CHECK_SQL, name="status"),
        CheckConstraint("progress_percent BETWEEN 0 AND 100", name="progress_range"),
        # Only `status`: every live row is rewritten by heartbeats and health marks, and
        # an indexed last_processed_at would turn each of those into index writes (no HOT
        # update). The claim loops sort the few rows of one status in memory.
        Index("ix_instances_status", "status"),
        Index("ix_instances_org_archived", "organization_id", "is_archived"),
        {"postgresql_with": {"fillfactor": 75}},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), _fk("organizations.id", "SET NULL")
    )
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), _fk("users.id", "SET NULL")
    )
    provider_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), _fk("providers.id"))
    zone_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), _fk("zones.id"))
    # Zones still allowed, in order, when the provider is out of stock in `zone_id`
    # (None: the deployment allowed no other); each is taken off as the instance moves.
    fallback_zone_ids: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(UUID(as_uuid=True)))
    instance_type_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), _fk("instance_types.id")
    )
    model_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), _fk("models.id"))

    status: Mapped[str] = mapped_column(String(32), server_default=text("'provisioning'"))
    progress_percent: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    # Completed lifecycle steps, in order: [{"step": ..., "at": ...}].
    progress_steps: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )
    error_code: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(Text)

    # What the provider calls it; our id is also its name/tag there, so a retried
    # create can find the server it already made.
    provider_instance_id: Mapped[str | None] = mapped_column(String(200), index=True)
    provider_metadata: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    ip_address: Mapped[str | None] = mapped_column(String(64))
    # The worker proves who it is at registration with a per-instance secret: checked
    # against its hash, and kept sealed (like the engine key the gateway adds to every
    # upstream call) so a retried create hands the provider the same values.
    bootstrap_secret_hash: Mapped[str | None] = mapped_column(String(128))
    bootstrap_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    engine_key_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    secrets_key_id: Mapped[str | None] = mapped_column(String(64))

    # Served traffic only when both are on: technical (owner/admin), economic (owner/manager).
    technical_activation: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    economic_activation: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))

    # Facts the worker agent reports; the orchestrator decides the state from them.
    worker_status: Mapped[str | None] = mapped_column(String(32))
    worker_phase: Mapped[str | None] = mapped_column(String(32))
    worker_last_heartbeat: Mapped[tstz | None]
    worker_health_port: Mapped[int | None] = mapped_column(Integer)
    worker_engine_port: Mapped[int | None] = mapped_column(Integer)
    worker_model_id: Mapped[str | None] = mapped_column(String(300))
    worker_queue_depth: Mapped[int | None] = mapped_column(Integer)
    worker_gpu_utilization: Mapped[float | None]
    worker_agent_version: Mapped[str | None] = mapped_column(String(64))
    worker_agent_checksum: Mapped[str | None] = mapped_column(String(128))
    worker_version_mismatch: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))

    is_archived: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    archived_at: Mapped[tstz | None]

    attempt_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[tstz | None]
    last_processed_at: Mapped[tstz | None]
    # How many state changes the instance went through (transition() bumps it, under
    # the row lock every lifecycle writer holds).
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))

    created_at: Mapped[created_at_col]
    updated_at: Mapped[updated_at_col]
    provider_created_at: Mapped[tstz | None]
    ready_at: Mapped[tstz | None]
    terminate_requested_at: Mapped[tstz | None]
    terminated_at: Mapped[tstz | None]
    failed_at: Mapped[tstz | None]

    # Server-made values are fetched after INSERT (RETURNING) but not after UPDATE, so
    # the UPDATEs of many instances can go out as one executemany. updated_at is left
    # expired on the object after an UPDATE (reading it would need a query); nothing
    # reads it there.
    __mapper_args__ = {"eager_defaults": "auto"}


class InstanceVolume(Base):
    __tablename__ = "instance_volumes"
    __table_args__ = (
        UniqueConstraint(
            "provider_id", "provider_volume_id", name="uq_instance_volumes_provider_volume"
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    instance_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), _fk("instances.id", "SET NULL"), index=True
    )
    provider_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), _fk("providers.id"))
    zone_code: Mapped[str | None] = mapped_column(String(64))
    provider_volume_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(200))
    volume_type: Mapped[str | None] = mapped_column(String(64))
    size_gb: Mapped[int | None] = mapped_column(Integer)
    is_boot: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    delete_on_terminate: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    status: Mapped[str] = mapped_column(String(32), server_default=text("'attached'"))
    created_at: Mapped[created_at_col]
    deleted_at: Mapped[tstz | None]


class ActionType(Base):
    __tablename__ = "action_types"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(64), server_default=text("'instance'"))
    color: Mapped[str] = mapped_column(String(32), server_default=text("'gray'"))
    icon: Mapped[str] = mapped_column(String(64), server_default=text("'activity'"))


class ActionLog(Base):
    __tablename__ = "action_logs"
    __table_args__ = (
        CheckConstraint("status IN ('in_progress', 'success', 'failed')", name="status"),
        Index("ix_action_logs_instance_created", "instance_id", "created_at"),
        Index("ix_action_logs_org_created", "organization_id", "created_at"),
        Index("ix_action_logs_type_created", "action_type", "created_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    action_type: Mapped[str] = mapped_column(String(64))
    component: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    instance_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), _fk("instances.id", "SET NULL")
    )
    organization_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), _fk("organizations.id", "SET NULL")
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), _fk("users.id", "SET NULL")
    )
    correlation_id: Mapped[str | None] = mapped_column(String(64))
    instance_status_before: Mapped[str | None] = mapped_column(String(32))
    instance_status_after: Mapped[str | None] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(Text)
    request_payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    response_payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[created_at_col]
    completed_at: Mapped[tstz | None]
