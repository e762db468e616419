"""Initial schema: catalog, identity, instances, observability and the finops schema.

Revision ID: 0001
Revises:
Create Date: 2026-11-28

The time-series tables become TimescaleDB hypertables when the extension can be
installed; without it they stay plain tables and everything else is the same.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Time-series tables and their time column, made hypertables when TimescaleDB exists.
HYPERTABLES = (
    ("public.gpu_samples", "time"),
    ("public.system_samples", "time"),
    ("finops.cost_actual_minute", "bucket_minute"),
    ("finops.cost_cumulative_minute", "bucket_minute"),
    ("finops.cost_forecast_minute", "bucket_minute"),
    ("finops.inference_usage", "occurred_at"),
)


def _timescaledb_available() -> bool:
    bind = op.get_bind()
    return bool(
        bind.execute(
            sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
        ).scalar()
    )


def _make_hypertables() -> None:
    if not _timescaledb_available():
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    for table, column in HYPERTABLES:
        op.execute(
            f"SELECT create_hypertable('{table}', '{column}', "
            "if_not_exists => TRUE, migrate_data => TRUE)"
        )


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS finops")
    op.create_table(
        "action_types",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column(
            "category", sa.String(length=64), server_default=sa.text("'instance'"), nullable=False
        ),
        sa.Column("color", sa.String(length=32), server_default=sa.text("'gray'"), nullable=False),
        sa.Column(
            "icon", sa.String(length=64), server_default=sa.text("'activity'"), nullable=False
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_action_types")),
    )
    op.create_table(
        "cost_actual_minute",
        sa.Column("cost_eur", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.Column("instance_id", sa.UUID(), nullable=False),
        sa.Column("bucket_minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=True),
        sa.Column("provider_id", sa.UUID(), nullable=True),
        sa.Column("region_id", sa.UUID(), nullable=True),
        sa.Column("zone_id", sa.UUID(), nullable=True),
        sa.Column("instance_type_id", sa.UUID(), nullable=True),
        sa.PrimaryKeyConstraint("instance_id", "bucket_minute", name=op.f("pk_cost_actual_minute")),
        schema="finops",
    )
    op.create_index(
        "ix_finops_cost_actual_minute_bucket",
        "cost_actual_minute",
        ["bucket_minute"],
        unique=False,
        schema="finops",
    )
    op.create_table(
        "cost_cumulative_minute",
        sa.Column("cumulative_cost_eur", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.Column("instance_id", sa.UUID(), nullable=False),
        sa.Column("bucket_minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=True),
        sa.Column("provider_id", sa.UUID(), nullable=True),
        sa.Column("region_id", sa.UUID(), nullable=True),
        sa.Column("zone_id", sa.UUID(), nullable=True),
        sa.Column("instance_type_id", sa.UUID(), nullable=True),
        sa.PrimaryKeyConstraint(
            "instance_id", "bucket_minute", name=op.f("pk_cost_cumulative_minute")
        ),
        schema="finops",
    )
    op.create_index(
        "ix_finops_cost_cumulative_minute_bucket",
        "cost_cumulative_minute",
        ["bucket_minute"],
        unique=False,
        schema="finops",
    )
    op.create_table(
        "cost_forecast_minute",
        sa.Column("burn_rate_eur_per_hour", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.Column("forecast_eur_1h", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.Column("forecast_eur_1d", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.Column("forecast_eur_30d", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.Column("forecast_eur_365d", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.Column("instance_id", sa.UUID(), nullable=False),
        sa.Column("bucket_minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=True),
        sa.Column("provider_id", sa.UUID(), nullable=True),
        sa.Column("region_id", sa.UUID(), nullable=True),
        sa.Column("zone_id", sa.UUID(), nullable=True),
        sa.Column("instance_type_id", sa.UUID(), nullable=True),
        sa.PrimaryKeyConstraint(
            "instance_id", "bucket_minute", name=op.f("pk_cost_forecast_minute")
        ),
        schema="finops",
    )
    op.create_index(
        "ix_finops_cost_forecast_minute_bucket",
        "cost_forecast_minute",
        ["bucket_minute"],
        unique=False,
        schema="finops",
    )
    op.create_table(
        "inference_usage",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=True),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("api_key_id", sa.UUID(), nullable=True),
        sa.Column("instance_id", sa.UUID(), nullable=True),
        sa.Column("model_id", sa.UUID(), nullable=True),
        sa.Column("model_name", sa.String(length=300), nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("total_tokens", sa.Integer(), nullable=False),
        sa.Column("time_to_first_token_ms", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("input_cost_eur", sa.Numeric(precision=20, scale=10), nullable=True),
        sa.Column("output_cost_eur", sa.Numeric(precision=20, scale=10), nullable=True),
        sa.PrimaryKeyConstraint("id", "occurred_at", name=op.f("pk_inference_usage")),
        schema="finops",
    )
    op.create_index(
        "ix_finops_inference_usage_instance_time",
        "inference_usage",
        ["instance_id", "occurred_at"],
        unique=False,
        schema="finops",
    )
    op.create_index(
        "ix_finops_inference_usage_org_time",
        "inference_usage",
        ["organization_id", "occurred_at"],
        unique=False,
        schema="finops",
    )
    op.create_index(
        "uq_finops_inference_usage_request",
        "inference_usage",
        ["request_id", "occurred_at"],
        unique=True,
        schema="finops",
    )
    op.create_table(
        "providers",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_providers")),
        sa.UniqueConstraint("code", name=op.f("uq_providers_code")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=True),
        sa.Column("last_name", sa.String(length=100), nullable=True),
        sa.Column("role", sa.String(length=16), server_default=sa.text("'user'"), nullable=False),
        sa.Column(
            "account_plan", sa.String(length=32), server_default=sa.text("'free'"), nullable=False
        ),
        sa.Column(
            "wallet_balance_eur",
            sa.Numeric(precision=14, scale=6),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("role IN ('admin', 'user')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_index(
        "uq_users_email_lower", "users", [sa.literal_column("lower(email)")], unique=True
    )
    op.create_index(
        "uq_users_username_lower", "users", [sa.literal_column("lower(username)")], unique=True
    )
    op.create_table(
        "instance_types",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("provider_id", sa.UUID(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("gpu_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("gpu_model", sa.String(length=64), nullable=True),
        sa.Column("gpu_memory_gb", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("vcpu_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("ram_gb", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("bandwidth_bps", sa.BigInteger(), nullable=True),
        sa.Column("cost_per_hour_eur", sa.Numeric(precision=14, scale=6), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name=op.f("fk_instance_types_provider_id_providers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instance_types")),
        sa.UniqueConstraint("provider_id", "code", name="uq_instance_types_provider_code"),
    )
    op.create_table(
        "organizations",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column(
            "subscription_plan",
            sa.String(length=32),
            server_default=sa.text("'free'"),
            nullable=False,
        ),
        sa.Column(
            "wallet_balance_eur",
            sa.Numeric(precision=14, scale=6),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column("sidebar_color", sa.String(length=32), nullable=True),
        sa.Column("created_by_user_id", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_organizations_created_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
        sa.UniqueConstraint("slug", name=op.f("uq_organizations_slug")),
    )
    op.create_table(
        "regions",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("provider_id", sa.UUID(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name=op.f("fk_regions_provider_id_providers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_regions")),
        sa.UniqueConstraint("provider_id", "code", name="uq_regions_provider_code"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("created_by_user_id", sa.UUID(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("key_prefix", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.String(length=128), nullable=False),
        sa.Column("allowed_models", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("requests_per_minute", sa.Integer(), nullable=True),
        sa.Column("tokens_per_minute", sa.Integer(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_api_keys_created_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_api_keys_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(
        op.f("ix_api_keys_organization_id"), "api_keys", ["organization_id"], unique=False
    )
    op.create_table(
        "models",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("model_id", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=32), server_default=sa.text("'chat'"), nullable=False),
        sa.Column("required_vram_gb", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("context_length", sa.Integer(), nullable=True),
        sa.Column(
            "price_per_1k_input_tokens_eur",
            sa.Numeric(precision=14, scale=6),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column(
            "price_per_1k_output_tokens_eur",
            sa.Numeric(precision=14, scale=6),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "technical_activation", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        sa.Column(
            "economic_activation", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        sa.Column(
            "engine_args",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_models_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
    )
    op.create_index(
        "uq_models_org_model_id",
        "models",
        ["organization_id", "model_id"],
        unique=True,
        postgresql_where=sa.text("organization_id IS NOT NULL"),
    )
    op.create_index(
        "uq_models_public_model_id",
        "models",
        ["model_id"],
        unique=True,
        postgresql_where=sa.text("organization_id IS NULL"),
    )
    op.create_table(
        "organization_invitations",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=128), nullable=False),
        sa.Column("invited_by_user_id", sa.UUID(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_by_user_id", sa.UUID(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "role IN ('owner', 'admin', 'manager', 'user')",
            name=op.f("ck_organization_invitations_role"),
        ),
        sa.ForeignKeyConstraint(
            ["accepted_by_user_id"],
            ["users.id"],
            name=op.f("fk_organization_invitations_accepted_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["invited_by_user_id"],
            ["users.id"],
            name=op.f("fk_organization_invitations_invited_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_organization_invitations_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organization_invitations")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_organization_invitations_token_hash")),
    )
    op.create_index(
        op.f("ix_organization_invitations_organization_id"),
        "organization_invitations",
        ["organization_id"],
        unique=False,
    )
    op.create_table(
        "organization_memberships",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "role IN ('owner', 'admin', 'manager', 'user')",
            name=op.f("ck_organization_memberships_role"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_organization_memberships_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_organization_memberships_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "organization_id", "user_id", name=op.f("pk_organization_memberships")
        ),
    )
    op.create_index(
        op.f("ix_organization_memberships_user_id"),
        "organization_memberships",
        ["user_id"],
        unique=False,
    )
    op.create_table(
        "provider_settings",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("provider_id", sa.UUID(), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_provider_settings_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name=op.f("fk_provider_settings_provider_id_providers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_settings")),
        sa.UniqueConstraint(
            "organization_id", "provider_id", "key", name="uq_provider_settings_org_provider_key"
        ),
    )
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("current_organization_id", sa.UUID(), nullable=True),
        sa.Column("ip_address", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_used_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["current_organization_id"],
            ["organizations.id"],
            name=op.f("fk_user_sessions_current_organization_id_organizations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
    )
    op.create_index(op.f("ix_user_sessions_user_id"), "user_sessions", ["user_id"], unique=False)
    op.create_table(
        "zones",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("region_id", sa.UUID(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["region_id"],
            ["regions.id"],
            name=op.f("fk_zones_region_id_regions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_zones")),
        sa.UniqueConstraint("region_id", "code", name="uq_zones_region_code"),
    )
    op.create_table(
        "instance_type_zones",
        sa.Column("instance_type_id", sa.UUID(), nullable=False),
        sa.Column("zone_id", sa.UUID(), nullable=False),
        sa.Column("is_available", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_type_id"],
            ["instance_types.id"],
            name=op.f("fk_instance_type_zones_instance_type_id_instance_types"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["zone_id"],
            ["zones.id"],
            name=op.f("fk_instance_type_zones_zone_id_zones"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_type_id", "zone_id", name=op.f("pk_instance_type_zones")),
    )
    op.create_table(
        "instances",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=True),
        sa.Column("created_by_user_id", sa.UUID(), nullable=True),
        sa.Column("provider_id", sa.UUID(), nullable=False),
        sa.Column("zone_id", sa.UUID(), nullable=True),
        sa.Column("instance_type_id", sa.UUID(), nullable=True),
        sa.Column("model_id", sa.UUID(), nullable=True),
        sa.Column(
            "status", sa.String(length=32), server_default=sa.text("'provisioning'"), nullable=False
        ),
        sa.Column(
            "progress_percent", sa.SmallInteger(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("error_code", sa.String(length=100), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("provider_instance_id", sa.String(length=200), nullable=True),
        sa.Column(
            "provider_metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("ip_address", sa.String(length=64), nullable=True),
        sa.Column(
            "technical_activation", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        sa.Column(
            "economic_activation", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        sa.Column("worker_status", sa.String(length=32), nullable=True),
        sa.Column("worker_phase", sa.String(length=32), nullable=True),
        sa.Column("worker_last_heartbeat", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worker_health_port", sa.Integer(), nullable=True),
        sa.Column("worker_engine_port", sa.Integer(), nullable=True),
        sa.Column("worker_model_id", sa.String(length=300), nullable=True),
        sa.Column("worker_queue_depth", sa.Integer(), nullable=True),
        sa.Column("worker_gpu_utilization", sa.Double(), nullable=True),
        sa.Column("worker_agent_version", sa.String(length=64), nullable=True),
        sa.Column("worker_agent_checksum", sa.String(length=128), nullable=True),
        sa.Column(
            "worker_version_mismatch", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("is_archived", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempt_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("provider_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("terminate_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("terminated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('provisioning', 'booting', 'installing', 'starting', 'ready', 'unhealthy', 'terminating', 'terminated', 'failed')",
            name=op.f("ck_instances_status"),
        ),
        sa.CheckConstraint(
            "progress_percent BETWEEN 0 AND 100", name=op.f("ck_instances_progress_range")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_instances_created_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["instance_type_id"],
            ["instance_types.id"],
            name=op.f("fk_instances_instance_type_id_instance_types"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_instances_model_id_models"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_instances_organization_id_organizations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name=op.f("fk_instances_provider_id_providers"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["zone_id"], ["zones.id"], name=op.f("fk_instances_zone_id_zones"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instances")),
    )
    op.create_index(
        "ix_instances_org_archived", "instances", ["organization_id", "is_archived"], unique=False
    )
    op.create_index(
        op.f("ix_instances_provider_instance_id"),
        "instances",
        ["provider_instance_id"],
        unique=False,
    )
    op.create_index(
        "ix_instances_status_last_processed",
        "instances",
        ["status", "last_processed_at"],
        unique=False,
    )
    op.create_table(
        "action_logs",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("action_type", sa.String(length=64), nullable=False),
        sa.Column("component", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("instance_id", sa.UUID(), nullable=True),
        sa.Column("organization_id", sa.UUID(), nullable=True),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("correlation_id", sa.String(length=64), nullable=True),
        sa.Column("instance_status_before", sa.String(length=32), nullable=True),
        sa.Column("instance_status_after", sa.String(length=32), nullable=True),
        sa.Column("error_code", sa.String(length=100), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("request_payload", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("response_payload", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('in_progress', 'success', 'failed')", name=op.f("ck_action_logs_status")
        ),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["instances.id"],
            name=op.f("fk_action_logs_instance_id_instances"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_action_logs_organization_id_organizations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_action_logs_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_logs")),
    )
    op.create_index(
        "ix_action_logs_instance_created",
        "action_logs",
        ["instance_id", "created_at"],
        unique=False,
    )
    op.create_index(
        "ix_action_logs_org_created", "action_logs", ["organization_id", "created_at"], unique=False
    )
    op.create_index(
        "ix_action_logs_type_created", "action_logs", ["action_type", "created_at"], unique=False
    )
    op.create_table(
        "gpu_samples",
        sa.Column("instance_id", sa.UUID(), nullable=False),
        sa.Column("gpu_index", sa.SmallInteger(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("utilization_pct", sa.Float(), nullable=True),
        sa.Column("memory_used_mb", sa.Float(), nullable=True),
        sa.Column("memory_total_mb", sa.Float(), nullable=True),
        sa.Column("temperature_c", sa.Float(), nullable=True),
        sa.Column("power_w", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["instances.id"],
            name=op.f("fk_gpu_samples_instance_id_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_id", "gpu_index", "time", name=op.f("pk_gpu_samples")),
    )
    op.create_table(
        "instance_request_metrics",
        sa.Column("instance_id", sa.UUID(), nullable=False),
        sa.Column("total_requests", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("successful_requests", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("failed_requests", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("total_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("first_request_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_request_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["instances.id"],
            name=op.f("fk_instance_request_metrics_instance_id_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_id", name=op.f("pk_instance_request_metrics")),
    )
    op.create_table(
        "instance_volumes",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("instance_id", sa.UUID(), nullable=True),
        sa.Column("provider_id", sa.UUID(), nullable=False),
        sa.Column("zone_code", sa.String(length=64), nullable=True),
        sa.Column("provider_volume_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("volume_type", sa.String(length=64), nullable=True),
        sa.Column("size_gb", sa.Integer(), nullable=True),
        sa.Column("is_boot", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "delete_on_terminate", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        sa.Column(
            "status", sa.String(length=32), server_default=sa.text("'attached'"), nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["instances.id"],
            name=op.f("fk_instance_volumes_instance_id_instances"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name=op.f("fk_instance_volumes_provider_id_providers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instance_volumes")),
        sa.UniqueConstraint(
            "provider_id", "provider_volume_id", name="uq_instance_volumes_provider_volume"
        ),
    )
    op.create_index(
        op.f("ix_instance_volumes_instance_id"), "instance_volumes", ["instance_id"], unique=False
    )
    op.create_table(
        "system_samples",
        sa.Column("instance_id", sa.UUID(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cpu_pct", sa.Float(), nullable=True),
        sa.Column("load_1m", sa.Float(), nullable=True),
        sa.Column("memory_used_bytes", sa.BigInteger(), nullable=True),
        sa.Column("memory_total_bytes", sa.BigInteger(), nullable=True),
        sa.Column("disk_used_bytes", sa.BigInteger(), nullable=True),
        sa.Column("disk_total_bytes", sa.BigInteger(), nullable=True),
        sa.Column("net_rx_bytes", sa.BigInteger(), nullable=True),
        sa.Column("net_tx_bytes", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["instances.id"],
            name=op.f("fk_system_samples_instance_id_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_id", "time", name=op.f("pk_system_samples")),
    )
    op.create_table(
        "worker_auth_tokens",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("instance_id", sa.UUID(), nullable=False),
        sa.Column("token_hash", sa.String(length=128), nullable=False),
        sa.Column("token_prefix", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["instances.id"],
            name=op.f("fk_worker_auth_tokens_instance_id_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_auth_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_worker_auth_tokens_token_hash")),
    )
    op.create_index(
        op.f("ix_worker_auth_tokens_instance_id"),
        "worker_auth_tokens",
        ["instance_id"],
        unique=False,
    )
    _make_hypertables()


def downgrade() -> None:
    op.drop_index(op.f("ix_worker_auth_tokens_instance_id"), table_name="worker_auth_tokens")
    op.drop_table("worker_auth_tokens")
    op.drop_table("system_samples")
    op.drop_index(op.f("ix_instance_volumes_instance_id"), table_name="instance_volumes")
    op.drop_table("instance_volumes")
    op.drop_table("instance_request_metrics")
    op.drop_table("gpu_samples")
    op.drop_index("ix_action_logs_type_created", table_name="action_logs")
    op.drop_index("ix_action_logs_org_created", table_name="action_logs")
    op.drop_index("ix_action_logs_instance_created", table_name="action_logs")
    op.drop_table("action_logs")
    op.drop_index("ix_instances_status_last_processed", table_name="instances")
    op.drop_index(op.f("ix_instances_provider_instance_id"), table_name="instances")
    op.drop_index("ix_instances_org_archived", table_name="instances")
    op.drop_table("instances")
    op.drop_table("instance_type_zones")
    op.drop_table("zones")
    op.drop_index(op.f("ix_user_sessions_user_id"), table_name="user_sessions")
    op.drop_table("user_sessions")
    op.drop_table("provider_settings")
    op.drop_index(
        op.f("ix_organization_memberships_user_id"), table_name="organization_memberships"
    )
    op.drop_table("organization_memberships")
    op.drop_index(
        op.f("ix_organization_invitations_organization_id"), table_name="organization_invitations"
    )
    op.drop_table("organization_invitations")
    op.drop_index(
        "uq_models_public_model_id",
        table_name="models",
        postgresql_where=sa.text("organization_id IS NULL"),
    )
    op.drop_index(
        "uq_models_org_model_id",
        table_name="models",
        postgresql_where=sa.text("organization_id IS NOT NULL"),
    )
    op.drop_table("models")
    op.drop_index(op.f("ix_api_keys_organization_id"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("regions")
    op.drop_table("organizations")
    op.drop_table("instance_types")
    op.drop_index("uq_users_username_lower", table_name="users")
    op.drop_index("uq_users_email_lower", table_name="users")
    op.drop_table("users")
    op.drop_table("providers")
    op.drop_index(
        "uq_finops_inference_usage_request", table_name="inference_usage", schema="finops"
    )
    op.drop_index(
        "ix_finops_inference_usage_org_time", table_name="inference_usage", schema="finops"
    )
    op.drop_index(
        "ix_finops_inference_usage_instance_time", table_name="inference_usage", schema="finops"
    )
    op.drop_table("inference_usage", schema="finops")
    op.drop_index(
        "ix_finops_cost_forecast_minute_bucket", table_name="cost_forecast_minute", schema="finops"
    )
    op.drop_table("cost_forecast_minute", schema="finops")
    op.drop_index(
        "ix_finops_cost_cumulative_minute_bucket",
        table_name="cost_cumulative_minute",
        schema="finops",
    )
    op.drop_table("cost_cumulative_minute", schema="finops")
    op.drop_index(
        "ix_finops_cost_actual_minute_bucket", table_name="cost_actual_minute", schema="finops"
    )
    op.drop_table("cost_actual_minute", schema="finops")
    op.drop_table("action_types")
    op.execute("DROP SCHEMA IF EXISTS finops CASCADE")
