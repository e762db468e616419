"""The action type of one step of a provider's create (a volume made, user data set, the
server powered on...), logged with how long it took.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here: a migration must not change when the code's catalog grows.
ACTION_TYPES = {
    "provider.step": ("A step of the server's creation", "provider", "blue", "list-checks"),
}


def upgrade() -> None:
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
