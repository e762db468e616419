"""Instances: updates that touch no indexed column stay on their page (HOT).

Heartbeat flushes and health marks rewrite every live instance row, over and over.
`last_processed_at` no longer sits in an index (the claim loops sort the few rows of
one status in memory), and pages keep a quarter free, so those rewrites add no index
entries and leave the table as small as the fleet.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_instances_status_last_processed", table_name="instances")
    op.create_index("ix_instances_status", "instances", ["status"])
    # Applies to pages written from now on; existing ones follow as they are rewritten.
    op.execute("ALTER TABLE instances SET (fillfactor = 75)")


def downgrade() -> None:
    op.execute("ALTER TABLE instances RESET (fillfactor)")
    op.drop_index("ix_instances_status", table_name="instances")
    op.create_index(
        "ix_instances_status_last_processed", "instances", ["status", "last_processed_at"]
    )
