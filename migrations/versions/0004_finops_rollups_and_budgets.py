"""FinOps: hour and day rollups per instance, minute, hour and day totals per
organization, the minute job's billing bookmarks, hourly token usage, organization
budgets and their alerts, and the budget action types.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here: a migration must not change when the code's catalog grows.
ACTION_TYPES = {
    "budget.threshold_reached": ("Budget threshold reached", "finops", "orange", "wallet"),
    "budget.cap_reached": ("Budget cap reached", "finops", "red", "octagon"),
}


def upgrade() -> None:
    op.create_table(
        "billing_progress",
        sa.Column("id", sa.SmallInteger(), server_default=sa.text("1"), nullable=False),
        sa.Column("billed_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_billing_progress_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_progress")),
        schema="finops",
    )
    op.create_table(
        "billing_state",
        sa.Column("instance_id", sa.UUID(), nullable=False),
        sa.Column("billed_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("minutes_billed", sa.Integer(), nullable=False),
        sa.Column("cumulative_cost_eur", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.Column("closed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("instance_id", name=op.f("pk_billing_state")),
        schema="finops",
    )
    op.create_index(
        "ix_finops_billing_state_open",
        "billing_state",
        ["instance_id"],
        unique=False,
        schema="finops",
        postgresql_where=sa.text("NOT closed"),
    )
    op.create_table(
        "cost_actual_day",
        sa.Column("instance_id", sa.UUID(), nullable=False),
        sa.Column("bucket_day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cost_eur", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=True),
        sa.Column("provider_id", sa.UUID(), nullable=True),
        sa.Column("region_id", sa.UUID(), nullable=True),
        sa.Column("zone_id", sa.UUID(), nullable=True),
        sa.Column("instance_type_id", sa.UUID(), nullable=True),
        sa.PrimaryKeyConstraint("instance_id", "bucket_day", name=op.f("pk_cost_actual_day")),
        schema="finops",
    )
    op.create_index(
        "ix_finops_cost_actual_day_org_bucket",
        "cost_actual_day",
        ["organization_id", "bucket_day"],
        unique=False,
        schema="finops",
        postgresql_include=["instance_id", "cost_eur"],
    )
    op.create_table(
        "cost_actual_hour",
        sa.Column("instance_id", sa.UUID(), nullable=False),
        sa.Column("bucket_hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cost_eur", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=True),
        sa.Column("provider_id", sa.UUID(), nullable=True),
        sa.Column("region_id", sa.UUID(), nullable=True),
        sa.Column("zone_id", sa.UUID(), nullable=True),
        sa.Column("instance_type_id", sa.UUID(), nullable=True),
        sa.PrimaryKeyConstraint("instance_id", "bucket_hour", name=op.f("pk_cost_actual_hour")),
        schema="finops",
    )
    op.create_index(
        "ix_finops_cost_actual_hour_org_bucket",
        "cost_actual_hour",
        ["organization_id", "bucket_hour"],
        unique=False,
        schema="finops",
        postgresql_include=["instance_id", "cost_eur"],
    )
    op.create_table(
        "cost_org_bucket",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("grain", sa.String(length=8), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cost_eur", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "organization_id", "grain", "bucket", name=op.f("pk_cost_org_bucket")
        ),
        schema="finops",
    )
    op.create_table(
        "usage_hour",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("bucket_hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=True),
        sa.Column("instance_id", sa.UUID(), nullable=True),
        sa.Column("model_id", sa.UUID(), nullable=True),
        sa.Column("api_key_id", sa.UUID(), nullable=True),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("model_name", sa.String(length=300), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("failed_requests", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("input_cost_eur", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.Column("output_cost_eur", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_hour")),
        schema="finops",
    )
    op.create_index(
        "ix_finops_usage_hour_instance_bucket",
        "usage_hour",
        ["instance_id", "bucket_hour"],
        unique=False,
        schema="finops",
    )
    op.create_index(
        "ix_finops_usage_hour_org_bucket",
        "usage_hour",
        ["organization_id", "bucket_hour"],
        unique=False,
        schema="finops",
    )
    op.create_index(
        "uq_finops_usage_hour_key",
        "usage_hour",
        ["bucket_hour", "organization_id", "instance_id", "model_id", "api_key_id", "user_id"],
        unique=True,
        schema="finops",
        postgresql_nulls_not_distinct=True,
    )
    op.create_table(
        "budget_alerts",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("threshold_percent", sa.Integer(), nullable=False),
        sa.Column("spent_eur", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.Column("budget_eur", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_budget_alerts_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "organization_id", "month", "threshold_percent", name=op.f("pk_budget_alerts")
        ),
        schema="finops",
    )
    op.create_table(
        "budgets",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("monthly_budget_eur", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column(
            "alert_thresholds",
            postgresql.ARRAY(sa.Integer()),
            server_default=sa.text("'{50,80,100}'"),
            nullable=False,
        ),
        sa.Column("hard_cap", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("stop_at_cap", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("updated_by_user_id", sa.UUID(), nullable=True),
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
            name=op.f("fk_budgets_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_budgets")),
        schema="finops",
    )
    op.drop_index(
        op.f("ix_finops_cost_actual_minute_bucket"),
        table_name="cost_actual_minute",
        schema="finops",
    )
    op.create_index(
        "ix_finops_cost_actual_minute_org_bucket",
        "cost_actual_minute",
        ["organization_id", "bucket_minute"],
        unique=False,
        schema="finops",
        postgresql_include=["instance_id", "cost_eur"],
    )
    op.drop_index(
        op.f("ix_finops_cost_cumulative_minute_bucket"),
        table_name="cost_cumulative_minute",
        schema="finops",
    )
    op.create_index(
        "ix_finops_inference_usage_unpriced",
        "inference_usage",
        ["occurred_at"],
        unique=False,
        schema="finops",
        postgresql_where=sa.text("input_cost_eur IS NULL"),
    )
    action_types = sa.table(
        "action_types",
        sa.column("code", sa.String),
        sa.column("label", sa.String),
        sa.column("category", sa.String),
        sa.column("color", sa.String),
        sa.column("icon", sa.String),
    )
    op.bulk_insert(
        action_types,
        [
            {"code": code, "label": label, "category": category, "color": color, "icon": icon}
            for code, (label, category, color, icon) in ACTION_TYPES.items()
        ],
    )


def downgrade() -> None:
    op.execute(
        sa.text("DELETE FROM action_types WHERE code = ANY(:codes)").bindparams(
            codes=list(ACTION_TYPES)
        )
    )
    op.drop_index(
        "ix_finops_inference_usage_unpriced",
        table_name="inference_usage",
        schema="finops",
        postgresql_where=sa.text("input_cost_eur IS NULL"),
    )
    op.create_index(
        op.f("ix_finops_cost_cumulative_minute_bucket"),
        "cost_cumulative_minute",
        ["bucket_minute"],
        unique=False,
        schema="finops",
    )
    op.drop_index(
        "ix_finops_cost_actual_minute_org_bucket",
        table_name="cost_actual_minute",
        schema="finops",
        postgresql_include=["instance_id", "cost_eur"],
    )
    op.create_index(
        op.f("ix_finops_cost_actual_minute_bucket"),
        "cost_actual_minute",
        ["bucket_minute"],
        unique=False,
        schema="finops",
    )
    op.drop_table("budgets", schema="finops")
    op.drop_table("budget_alerts", schema="finops")
    op.drop_index(
        "uq_finops_usage_hour_key",
        table_name="usage_hour",
        schema="finops",
        postgresql_nulls_not_distinct=True,
    )
    op.drop_index("ix_finops_usage_hour_org_bucket", table_name="usage_hour", schema="finops")
    op.drop_index("ix_finops_usage_hour_instance_bucket", table_name="usage_hour", schema="finops")
    op.drop_table("usage_hour", schema="finops")
    op.drop_table("cost_org_bucket", schema="finops")
    op.drop_index(
        "ix_finops_cost_actual_hour_org_bucket",
        table_name="cost_actual_hour",
        schema="finops",
        postgresql_include=["instance_id", "cost_eur"],
    )
    op.drop_table("cost_actual_hour", schema="finops")
    op.drop_index(
        "ix_finops_cost_actual_day_org_bucket",
        table_name="cost_actual_day",
        schema="finops",
        postgresql_include=["instance_id", "cost_eur"],
    )
    op.drop_table("cost_actual_day", schema="finops")
    op.drop_index(
        "ix_finops_billing_state_open",
        table_name="billing_state",
        schema="finops",
        postgresql_where=sa.text("NOT closed"),
    )
    op.drop_table("billing_state", schema="finops")
    op.drop_table("billing_progress", schema="finops")
