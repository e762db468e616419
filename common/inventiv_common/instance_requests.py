"""What any service may ask of an instance without changing its state.

Only the orchestrator moves an instance from one state to another
(`inventiv_orchestrator.transitions`). Everyone else asks: a new row in the first state
with its first step (a deployment), or a flag (terminate requested, activations,
archived), each a plain conditional UPDATE that cannot collide with the orchestrator's
writes of the same row, followed by a command sent after the caller's commit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, update
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_common import actions
from inventiv_common.actions import log_action
from inventiv_common.bus import Envelope, publish_after_commit
from inventiv_common.db.models import Instance
from inventiv_common.lifecycle import FIRST_STEP
from inventiv_common.messages import CMD_TERMINATE

# Core table: updates through it leave the ORM's version counter to the orchestrator.
INSTANCES = cast(Table, Instance.__table__)


def first_steps(now: datetime | None = None) -> list[dict[str, str]]:
    """The progress steps of an instance just requested (progress 0)."""
    return [{"step": FIRST_STEP, "at": (now or datetime.now(UTC)).isoformat()}]


async def set_flags(session: AsyncSession, instance: Instance, **flags: Any) -> None:
    """Set flag columns (activations, archived) of one instance, then reload it."""
    await session.execute(update(INSTANCES).where(INSTANCES.c.id == instance.id).values(flags))
    await session.refresh(instance)


async def request_termination(
    session: AsyncSession,
    instance: Instance,
    *,
    component: str,
    user_id: Any = None,
    correlation_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> bool:
    """Ask the orchestrator to terminate an instance; True if this was the first ask.

    The orchestrator owns state changes (it moves the instance to terminating); the
    asker only raises the request flag, with a plain conditional UPDATE that cannot
    collide with the orchestrator's versioned writes, and the command goes out after
    the caller's commit (again on a repeated ask: the first may have been lost)."""
    flagged = await session.execute(
        update(INSTANCES)
        .where(INSTANCES.c.id == instance.id, INSTANCES.c.terminate_requested_at.is_(None))
        .values(terminate_requested_at=datetime.now(UTC))
    )
    first = bool(flagged.rowcount)  # type: ignore[attr-defined]
    if first:
        log_action(
            session,
            instance,
            actions.TERMINATE_REQUESTED,
            component=component,
            user_id=user_id,
            correlation_id=correlation_id,
            details=details,
        )
    publish_after_commit(
        session,
        Envelope(
            type=CMD_TERMINATE,
            organization_id=instance.organization_id,
            correlation_id=correlation_id,
            payload={"instance_id": str(instance.id)},
        ),
    )
    return first
