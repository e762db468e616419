"""Instance states and the one table of allowed transitions between them."""

from __future__ import annotations

from enum import StrEnum


class InstanceStatus(StrEnum):
    provisioning = "provisioning"
    booting = "booting"
    installing = "installing"
    starting = "starting"
    ready = "ready"
    unhealthy = "unhealthy"
    terminating = "terminating"
    terminated = "terminated"
    failed = "failed"


S = InstanceStatus

# Every state change an instance may make; anything else is refused.
ALLOWED_TRANSITIONS: dict[InstanceStatus, frozenset[InstanceStatus]] = {
    S.provisioning: frozenset({S.booting, S.failed, S.terminating}),
    S.booting: frozenset({S.installing, S.starting, S.ready, S.failed, S.terminating}),
    S.installing: frozenset({S.starting, S.ready, S.failed, S.terminating}),
    S.starting: frozenset({S.ready, S.failed, S.terminating}),
    S.ready: frozenset({S.unhealthy, S.terminating}),
    S.unhealthy: frozenset({S.ready, S.terminating}),
    S.terminating: frozenset({S.terminated}),
    S.terminated: frozenset(),
    # A failed instance may still hold a server at the provider: it is cleaned up
    # through terminating like any other.
    S.failed: frozenset({S.terminating, S.terminated}),
}

TERMINAL_STATES = frozenset({S.terminated})
# States in which the provider may hold a server we pay for.
BILLABLE_STATES = frozenset(set(S) - {S.terminated})
ARCHIVABLE_STATES = frozenset({S.terminated, S.failed})
# Not closed yet: the instance has, or may still get, a server and volumes of its own.
LIVE_STATES = frozenset(set(S) - ARCHIVABLE_STATES)


# The step an instance starts with, written with its row when it is requested.
FIRST_STEP = "request_accepted"


def can_transition(current: InstanceStatus, target: InstanceStatus) -> bool:
    return target in ALLOWED_TRANSITIONS[current]


STATUS_CHECK_SQL = "status IN (" + ", ".join(f"'{s.value}'" for s in InstanceStatus) + ")"
