"""The one function that changes an instance's state; only the orchestrator has it.

It validates the move against the transition table, records the step and progress,
adds the action log and queues the live event, all in the caller's session; nothing
is written until the caller commits, so several moves of one instance in one pass
cost one UPDATE. Callers hold the instance's row lock (the lifecycle's claims), which
is what keeps two writers apart; `version` counts the state changes. Because the
UPDATE is not made conditional on the version, the instances a pass moves together
are written in one batched statement instead of a round trip each.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_common import actions
from inventiv_common.actions import log_action
from inventiv_common.bus import Envelope, publish_after_commit
from inventiv_common.db.models import ActionLog, Instance
from inventiv_common.lifecycle import FIRST_STEP, InstanceStatus, can_transition
from inventiv_common.messages import EVT_INSTANCE_STATUS_CHANGED

S = InstanceStatus

# Progress comes from completed steps, never from the status alone. The first step is
# written by the api with the instance's row (the request itself).
STEP_PROGRESS = {
    FIRST_STEP: 0,
    "provider_create": 20,
    "provider_running": 30,
    "worker_reachable": 45,
    "agent_registered": 55,
    "engine_started": 70,
    "model_loading": 85,
    "ready": 100,
}


class TransitionError(Exception):
    pass


def record_step(instance: Instance, step: str, now: datetime | None = None) -> bool:
    """Mark a step done (once); returns True when it is new."""
    if any(entry.get("step") == step for entry in instance.progress_steps or []):
        return False
    at = (now or datetime.now(UTC)).isoformat()
    # A new list, so the ORM sees the JSONB column change.
    instance.progress_steps = [*(instance.progress_steps or []), {"step": step, "at": at}]
    instance.progress_percent = max(instance.progress_percent or 0, STEP_PROGRESS[step])
    return True


def transition(
    session: AsyncSession,
    instance: Instance,
    target: InstanceStatus,
    *,
    reason: str,
    step: str | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    correlation_id: str | None = None,
    component: str = "orchestrator",
) -> ActionLog:
    current = S(instance.status)
    if not can_transition(current, target):
        raise TransitionError(f"{current.value} -> {target.value} is not allowed")
    now = datetime.now(UTC)
    instance.status = target.value
    instance.version = (instance.version or 0) + 1
    if step is not None:
        record_step(instance, step, now)
    if target is S.ready:
        instance.ready_at = instance.ready_at or now
        instance.error_code = instance.error_message = None
    elif target is S.failed:
        instance.failed_at = now
        instance.error_code, instance.error_message = (
            error_code or "failed",
            error_message or reason,
        )
    elif target is S.terminating:
        instance.terminate_requested_at = instance.terminate_requested_at or now
    elif target is S.terminated:
        instance.terminated_at = now
    instance.last_processed_at = now
    entry = log_action(
        session,
        instance,
        actions.STATUS_CHANGED,
        component=component,
        status="failed" if target is S.failed else "success",
        details={"reason": reason, **({"step": step} if step else {})},
        error_code=error_code,
        error_message=error_message,
        correlation_id=correlation_id,
    )
    entry.instance_status_before, entry.instance_status_after = current.value, target.value
    publish_after_commit(
        session,
        Envelope(
            type=EVT_INSTANCE_STATUS_CHANGED,
            organization_id=instance.organization_id,
            correlation_id=correlation_id,
            payload={
                "instance_id": str(instance.id),
                "from": current.value,
                "to": target.value,
                "progress": instance.progress_percent,
            },
        ),
    )
    return entry
