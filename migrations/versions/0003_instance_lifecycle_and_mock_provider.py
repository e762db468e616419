"""Instance lifecycle columns, the Mock provider's inventory, the action type catalog.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here: a migration must not change when the code's catalog grows.
ACTION_TYPES = {
    "deployment.requested": ("Deployment requested", "instance", "blue", "rocket"),
    "instance.status_changed": ("Status changed", "instance", "gray", "activity"),
    "provider.create": ("Server created at the provider", "provider", "blue", "server"),
    "provider.create_failed": ("Provider create failed", "provider", "red", "alert-triangle"),
    "provider.terminate": ("Server terminated at the provider", "provider", "orange", "power"),
    "worker.registered": ("Worker registered", "worker", "green", "link"),
    "worker.version_mismatch": ("Worker version mismatch", "worker", "red", "shield-alert"),
    "instance.terminate_requested": ("Termination requested", "instance", "orange", "trash"),
    "instance.archived": ("Instance archived", "instance", "gray", "archive"),
    "volume.deleted": ("Volume deleted", "storage", "orange", "hard-drive"),
    "watchdog.orphan_closed": ("Instance gone at the provider", "watchdog", "red", "ghost"),
    "watchdog.orphan_terminated": ("Orphan server terminated", "watchdog", "red", "scissors"),
    "catalog.sync": ("Catalog synchronized", "catalog", "purple", "refresh-cw"),
    "reconcile": ("Reconciliation", "watchdog", "purple", "git-merge"),
}


def upgrade() -> None:
    op.create_table(
        "mock_servers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.Column("commercial_type", sa.String(length=64), nullable=False),
        sa.Column(
            "status", sa.String(length=32), server_default=sa.text("'starting'"), nullable=False
        ),
        sa.Column("runtime", sa.String(length=32), nullable=False),
        sa.Column("ip_address", sa.String(length=64), nullable=True),
        sa.Column("health_port", sa.Integer(), nullable=True),
        sa.Column("engine_port", sa.Integer(), nullable=True),
        sa.Column(
            "details",
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
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mock_servers")),
    )
    op.create_index(
        "uq_mock_servers_live_name",
        "mock_servers",
        ["name"],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_table(
        "mock_volumes",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("server_id", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.Column("size_gb", sa.Integer(), nullable=False),
        sa.Column(
            "volume_type", sa.String(length=32), server_default=sa.text("'b_ssd'"), nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mock_volumes")),
    )
    op.create_index(op.f("ix_mock_volumes_server_id"), "mock_volumes", ["server_id"], unique=False)
    op.add_column(
        "instances",
        sa.Column(
            "progress_steps",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column(
        "instances", sa.Column("bootstrap_secret_hash", sa.String(length=128), nullable=True)
    )
    op.add_column(
        "instances", sa.Column("bootstrap_secret_encrypted", sa.LargeBinary(), nullable=True)
    )
    op.add_column("instances", sa.Column("engine_key_encrypted", sa.LargeBinary(), nullable=True))
    op.add_column("instances", sa.Column("secrets_key_id", sa.String(length=64), nullable=True))
    # The catalog as this revision knows it (later revisions add their own rows).
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
    op.drop_column("instances", "secrets_key_id")
    op.drop_column("instances", "bootstrap_secret_encrypted")
    op.drop_column("instances", "engine_key_encrypted")
    op.drop_column("instances", "bootstrap_secret_hash")
    op.drop_column("instances", "progress_steps")
    op.drop_index(op.f("ix_mock_volumes_server_id"), table_name="mock_volumes")
    op.drop_table("mock_volumes")
    op.drop_index(
        "uq_mock_servers_live_name",
        table_name="mock_servers",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_table("mock_servers")
