"""Action type codes written to `action_logs`.

The catalog rows (label, badge colour, icon) are data, inserted by the migration that
introduced each code; a test checks that every code here has its row.
"""

from __future__ import annotations

DEPLOYMENT_REQUESTED = "deployment.requested"
STATUS_CHANGED = "instance.status_changed"
PROVIDER_CREATE = "provider.create"
PROVIDER_CREATE_FAILED = "provider.create_failed"
PROVIDER_TERMINATE = "provider.terminate"
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

ALL = frozenset(value for name, value in dict(globals()).items() if name.isupper())
