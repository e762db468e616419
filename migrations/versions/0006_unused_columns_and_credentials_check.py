"""Columns nothing reads or writes are dropped (users.account_plan, users and
organizations.wallet_balance_eur); the action type of a provider credentials check.

Money kept as a bare balance column, with no ledger behind it, would be a liability the
day something writes it: credits arrive with their own ledger when they are built.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here: a migration must not change when the code's catalog grows.
ACTION_TYPES = {
    "provider.credentials_checked": ("Provider credentials checked", "provider", "blue", "key"),
}


def upgrade() -> None:
    op.drop_column("users", "account_plan")
    op.drop_column("users", "wallet_balance_eur")
    op.drop_column("organizations", "wallet_balance_eur")
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
    balance = sa.Numeric(14, 6)
    op.add_column(
        "organizations",
        sa.Column("wallet_balance_eur", balance, server_default="0", nullable=False),
    )
    op.add_column(
        "users", sa.Column("wallet_balance_eur", balance, server_default="0", nullable=False)
    )
    op.add_column(
        "users",
        sa.Column("account_plan", sa.String(32), server_default="free", nullable=False),
    )
