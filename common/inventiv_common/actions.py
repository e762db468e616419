"""The action log: the type codes written to `action_logs`, and the one way to write a row.

The catalog rows (label, badge colour, icon) are data, inserted by the migration that
introduced each code; a test checks that every code here has its row.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_common.db.models import ActionLog, Instance

DEPLOYMENT_REQUESTED = "deployment.requested"
STATUS_CHANGED = "instance.status_changed"
PROVIDER_CREATE = "provider.create"
PROVIDER_CREATE_FAILED = "provider.create_failed"
PROVIDER_ZONE_FALLBACK = "provider.zone_fallback"
PROVIDER_STEP = "provider.step"
PROVIDER_TERMINATE = "provider.terminate"
PROVIDER_CREDENTIALS_CHECKED = "provider.credentials_checked"
WORKER_REGISTERED = "worker.registered"
WORKER_VERSION_MISMATCH = "worker.version_mismatch"
TERMINATE_REQUESTED = "instance.terminate_requested"
ARCHIVED = "instance.archived"
VOLUME_DELETED = "volume.deleted"
VOLUME_DISCOVERED = "volume.discovered"
VOLUME_KEPT = "volume.kept"
VOLUME_GONE = "volume.gone"
ORPHAN_CLOSED = "watchdog.orphan_closed"
ORPHAN_TERMINATED = "watchdog.orphan_terminated"
CATALOG_SYNC = "catalog.sync"
RECONCILE = "reconcile"
BUDGET_THRESHOLD_REACHED = "budget.threshold_reached"
BUDGET_CAP_REACHED = "budget.cap_reached"

ALL = frozenset(
    value for name, value in dict(globals()).items() if name.isupper() and isinstance(value, str)
)


def action_values(
    action_type: str,
    *,
    component: str,
    instance_id: Any = None,
    organization_id: Any = None,
    status: str = "success",
    details: dict[str, Any] | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    correlation_id: str | None = None,
    user_id: Any = None,
    duration_ms: int | None = None,
) -> dict[str, Any]:
    """The columns of one action log row: what `log_action` adds through the ORM, and
    what hot paths insert with a plain statement."""
    return {
        "id": uuid.uuid4(),
        "action_type": action_type,
        "component": component,
        "status": status,
        "instance_id": instance_id,
        "organization_id": organization_id,
        "user_id": user_id,
        "correlation_id": correlation_id,
        "details": details,
        "error_code": error_code,
        "error_message": error_message,
        "duration_ms": duration_ms,
        "completed_at": datetime.now(UTC) if status != "in_progress" else None,
    }


def log_action(
    session: AsyncSession,
    instance: Instance | None,
    action_type: str,
    *,
    component: str,
    status: str = "success",
    details: dict[str, Any] | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    correlation_id: str | None = None,
    user_id: Any = None,
    organization_id: Any = None,
    instance_id: Any = None,
    duration_ms: int | None = None,
) -> ActionLog:
    """An action log row, added to the session. About `instance`, or, where only its
    ids are at hand (plain-row passes), about `instance_id` and `organization_id`."""
    entry = ActionLog(
        **action_values(
            action_type,
            component=component,
            instance_id=instance.id if instance else instance_id,
            organization_id=instance.organization_id if instance else organization_id,
            status=status,
            details=details,
            error_code=error_code,
            error_message=error_message,
            correlation_id=correlation_id,
            user_id=user_id,
            duration_ms=duration_ms,
        )
    )
    session.add(entry)
    return entry
