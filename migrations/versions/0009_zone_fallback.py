"""A deployment may fall back to other zones when its own is out of stock.

- `instances.fallback_zone_ids`: the zones (of the instance's provider) still allowed,
  in the order they are tried, when the provider has no stock of the type in the
  instance's zone; NULL when the deployment allowed none. The orchestrator takes each
  zone off the list as it moves there.
- The action type of that move.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here: a migration must not change when the code's catalog grows.
ACTION_TYPES = {
    "provider.zone_fallback": (
        "Moved to another zone (out of stock)",
        "provider",
        "orange",
        "shuffle",
    ),
}


def upgrade() -> None:
    op.add_column(
        "instances",
        sa.Column("fallback_zone_ids", postgresql.ARRAY(postgresql.UUID()), nullable=True),
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
    op.drop_column("instances", "fallback_zone_ids")
