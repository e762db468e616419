"""Every model has a context length: the gateway refuses requests for more tokens than
the model holds, so a model without one would be unbounded.

Models without one get the seed catalog's value for their engine id (a private copy of
a public model shares its length), else 8,192 tokens; the column becomes NOT NULL with
that default.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here: a migration must not change when the seed catalog does.
SEED_CONTEXT_LENGTHS = {
    "inventiv/mock-echo": 8192,
    "Qwen/Qwen2.5-0.5B-Instruct": 32768,
    "meta-llama/Llama-3.1-8B-Instruct": 32768,
    "BAAI/bge-m3": 8192,
}
DEFAULT_CONTEXT_LENGTH = 8192


def upgrade() -> None:
    models = sa.table(
        "models", sa.column("model_id", sa.String), sa.column("context_length", sa.Integer)
    )
    for model_id, length in SEED_CONTEXT_LENGTHS.items():
        op.execute(
            models.update()
            .where(models.c.model_id == model_id, models.c.context_length.is_(None))
            .values(context_length=length)
        )
    op.execute(
        models.update()
        .where(models.c.context_length.is_(None))
        .values(context_length=DEFAULT_CONTEXT_LENGTH)
    )
    op.alter_column(
        "models",
        "context_length",
        existing_type=sa.Integer(),
        nullable=False,
        server_default=sa.text(str(DEFAULT_CONTEXT_LENGTH)),
    )


def downgrade() -> None:
    # The lengths given stay: they are true of the models, only no longer required.
    op.alter_column(
        "models",
        "context_length",
        existing_type=sa.Integer(),
        nullable=True,
        server_default=None,
    )
