"""Users, organizations, memberships, invitations, sessions, API keys, credentials."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from inventiv_common.db.models.base import Base, created_at_col, tstz, updated_at_col, uuid_pk

ORG_ROLES = ("owner", "admin", "manager", "user")
_ORG_ROLE_CHECK = "role IN ('owner', 'admin', 'manager', 'user')"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        Index("uq_users_username_lower", func.lower(text("username")), unique=True),
        Index("uq_users_email_lower", func.lower(text("email")), unique=True),
        CheckConstraint("role IN ('admin', 'user')", name="role"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    username: Mapped[str] = mapped_column(String(64))
    email: Mapped[str] = mapped_column(String(320))
    password_hash: Mapped[str] = mapped_column(Text)
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    # Platform role: 'admin' manages users and the platform; organization roles live
    # on memberships.
    role: Mapped[str] = mapped_column(String(16), server_default=text("'user'"))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    last_login_at: Mapped[tstz | None]
    created_at: Mapped[created_at_col]
    updated_at: Mapped[updated_at_col]


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    subscription_plan: Mapped[str] = mapped_column(String(32), server_default=text("'free'"))
    # The console paints the workspace's sidebar with it.
    sidebar_color: Mapped[str | None] = mapped_column(String(32))
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[created_at_col]
    updated_at: Mapped[updated_at_col]


class OrganizationMembership(Base):
    __tablename__ = "organization_memberships"
    __table_args__ = (CheckConstraint(_ORG_ROLE_CHECK, name="role"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[created_at_col]
    updated_at: Mapped[updated_at_col]


class OrganizationInvitation(Base):
    __tablename__ = "organization_invitations"
    __table_args__ = (CheckConstraint(_ORG_ROLE_CHECK, name="role"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    invited_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[tstz | None]
    accepted_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    revoked_at: Mapped[tstz | None]
    created_at: Mapped[created_at_col]


class UserSession(Base):
    """One login. The session cookie's JWT names this row, checked on every request."""

    __tablename__ = "user_sessions"

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    current_organization_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="SET NULL")
    )
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[created_at_col]
    last_used_at: Mapped[created_at_col]
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[tstz | None]


class WorkerAuthToken(Base):
    __tablename__ = "worker_auth_tokens"

    id: Mapped[uuid.UUID] = uuid_pk()
    instance_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("instances.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    token_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[created_at_col]
    last_seen_at: Mapped[tstz | None]
    rotated_at: Mapped[tstz | None]
    revoked_at: Mapped[tstz | None]


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    name: Mapped[str] = mapped_column(String(200))
    key_prefix: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    # None means every model the organization can use.
    allowed_models: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    tokens_per_minute: Mapped[int | None] = mapped_column(Integer)
    expires_at: Mapped[tstz | None]
    last_used_at: Mapped[tstz | None]
    revoked_at: Mapped[tstz | None]
    created_at: Mapped[created_at_col]


class ProviderSetting(Base):
    """A provider credential of one organization, encrypted by the application."""

    __tablename__ = "provider_settings"
    __table_args__ = (
        UniqueConstraint(
            "organization_id", "provider_id", "key", name="uq_provider_settings_org_provider_key"
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE")
    )
    provider_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("providers.id", ondelete="CASCADE")
    )
    key: Mapped[str] = mapped_column(String(100))
    # AES-256-GCM: nonce followed by ciphertext and tag, under the key named by key_id.
    value_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[created_at_col]
    updated_at: Mapped[updated_at_col]
