"""What deploying on a real cloud needs to know.

- `models.data_volume_gb`: the size of the block volume that holds the model's cache on
  its VM (weights are downloaded there once and survive a reboot), 200 GB unless set.
- `models.requires_hf_token`: the model is gated on Hugging Face; its VM is given the
  platform's HF token (in user data only).
- `instance_type_zones.availability`: the provider's word on its stock of a type in a
  zone (`available`, `scarce`, `shortage`); a type in shortage takes no deployment.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "models",
        sa.Column("data_volume_gb", sa.Integer(), nullable=False, server_default=sa.text("200")),
    )
    op.create_check_constraint(
        op.f("ck_models_data_volume_gb"), "models", "data_volume_gb BETWEEN 10 AND 10000"
    )
    op.add_column(
        "models",
        sa.Column(
            "requires_hf_token", sa.Boolean(), nullable=False, server_default=sa.text("false")
        ),
    )
    op.add_column(
        "instance_type_zones",
        sa.Column(
            "availability",
            sa.String(16),
            nullable=False,
            server_default=sa.text("'available'"),
        ),
    )
    op.create_check_constraint(
        op.f("ck_instance_type_zones_availability"),
        "instance_type_zones",
        "availability IN ('available', 'scarce', 'shortage')",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_instance_type_zones_availability"), "instance_type_zones")
    op.drop_column("instance_type_zones", "availability")
    op.drop_column("models", "requires_hf_token")
    op.drop_constraint(op.f("ck_models_data_volume_gb"), "models")
    op.drop_column("models", "data_volume_gb")
