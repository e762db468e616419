"""Declarative base and the column helpers every table uses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from sqlalchemy import DateTime, MetaData, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, MappedColumn, mapped_column

# Stable constraint names, so migrations can drop and alter them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # Server-side values (defaults, updated_at) come back with the INSERT/UPDATE through
    # RETURNING, so reading them after a flush never needs another round trip, which
    # async sessions cannot do implicitly.
    __mapper_args__ = {"eager_defaults": True}


def uuid_pk() -> MappedColumn[uuid.UUID]:
    """A UUID primary key made client-side (the server default serves plain SQL). Rows
    whose keys are known, and marked as such (the sentinel), are inserted many per
    statement; server-made keys force the ORM to insert one row per round trip."""
    return mapped_column(
        UUID(as_uuid=True),
        primary_key=True,
        default=uuid.uuid4,
        server_default=text("gen_random_uuid()"),
        insert_sentinel=True,
    )


created_at_col = Annotated[
    datetime, mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
]
updated_at_col = Annotated[
    datetime,
    mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    ),
]
tstz = Annotated[datetime, mapped_column(DateTime(timezone=True))]
