"""Instances: updates that touch no indexed column stay on their page (HOT); the
storage action types (volumes discovered, kept, gone).

Heartbeat flushes and health marks rewrite every live instance row, over and over.
`last_processed_at` no longer sits in an index (the claim loops sort the few rows of
one status in memory), and pages keep a quarter free, so those rewrites add no index
entries and leave the table as small as the fleet.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here: a migration must not change when the code's catalog grows.
ACTION_TYPES = {
    "volume.discovered": ("Volume discovered", "storage", "blue", "hard-drive"),
    "volume.kept": ("Volume kept", "storage", "green", "hard-drive"),
    "volume.gone": ("Volume gone at the provider", "storage", "orange", "hard-drive"),
}


def upgrade() -> None:
    op.drop_index("ix_instances_status_last_processed", table_name="instances")
    op.create_index("ix_instances_status", "instances", ["status"])
    # Applies to pages written from now on; existing ones follow as they are rewritten.
    op.execute("ALTER TABLE instances SET (fillfactor = 75)")
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
    op.execute("ALTER TABLE instances RESET (fillfactor)")
    op.drop_index("ix_instances_status", table_name="instances")
    op.create_index(
        "ix_instances_status_last_processed", "instances", ["status", "last_processed_at"]
    )
