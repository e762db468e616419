"""Faults a test can set on the fake cloud, all thread-safe and effective at once."""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass

from tests.support.fake_scaleway.errors import ScalewayError

# Quota resources the fake counts, per project (Scaleway counts per organization or
# project; the names are ours, shown back in the error's `details`).
QUOTA_SERVERS = "instances_servers"
QUOTA_GPUS = "instances_gpus"
QUOTA_FLEXIBLE_IPS = "instances_flexible_ips"
QUOTA_BLOCK_VOLUMES = "block_volumes"
QUOTA_RESOURCES = (QUOTA_SERVERS, QUOTA_GPUS, QUOTA_FLEXIBLE_IPS, QUOTA_BLOCK_VOLUMES)

AVAILABILITY_LEVELS = ("available", "scarce", "shortage")


@dataclass
class _Failure:
    remaining: int
    method: str | None
    path: str
    status: int
    raw_text: str | None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and fnmatch.fnmatchcase(
            path, self.path
        )

    def error(self, path: str) -> ScalewayError:
        if self.raw_text is not None:
            return RawFailure(self.status, self.raw_text)
        if self.status == 409:
            return ScalewayError(
                409,
                {
                    "type": "transient_state",
                    "message": "resource is in a transient state",
                    "resource": "unknown",
                    "resource_id": path.rsplit("/", 1)[-1],
                    "current_state": "unknown",
                },
            )
        return ScalewayError(self.status, {"message": "service temporarily unavailable"})


class RawFailure(ScalewayError):
    """A failure whose body is not JSON (what a proxy in front of an API may send)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(status, {"message": text})
        self.raw_text = text


class FaultPlan:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._out_of_stock: dict[tuple[str, str], str] = {}
        self._availability: dict[tuple[str, str], str] = {}
        self._quotas: dict[str, int] = {}
        self._failures: list[_Failure] = []
        self.reject_credentials = False

    # --- stock -------------------------------------------------------------------
    def out_of_stock(self, zone: str, commercial_type: str, *, at: str = "create") -> None:
        """`commercial_type` cannot be had in `zone`: creating the server fails
        (`at="create"`), or creating works and powering on fails (`at="poweron"`).
        Its availability reads `shortage` either way."""
        if at not in ("create", "poweron"):
            raise ValueError("at is create or poweron")
        with self._lock:
            self._out_of_stock[(zone, commercial_type)] = at

    def restock(self, zone: str, commercial_type: str) -> None:
        with self._lock:
            self._out_of_stock.pop((zone, commercial_type), None)

    def stock_fails_at(self, zone: str, commercial_type: str) -> str | None:
        with self._lock:
            return self._out_of_stock.get((zone, commercial_type))

    def set_availability(self, zone: str, commercial_type: str, level: str) -> None:
        """What `get_server_types_availability` says, without refusing anything."""
        if level not in AVAILABILITY_LEVELS:
            raise ValueError(f"level is one of {AVAILABILITY_LEVELS}")
        with self._lock:
            self._availability[(zone, commercial_type)] = level

    def availability(self, zone: str, commercial_type: str) -> str:
        with self._lock:
            if (zone, commercial_type) in self._out_of_stock:
                return "shortage"
            return self._availability.get((zone, commercial_type), "available")

    # --- quotas ------------------------------------------------------------------
    def set_quota(self, resource: str, limit: int | None) -> None:
        """At most `limit` of `resource` (one of QUOTA_RESOURCES) per project; None
        lifts the quota."""
        if resource not in QUOTA_RESOURCES:
            raise ValueError(f"resource is one of {QUOTA_RESOURCES}")
        with self._lock:
            if limit is None:
                self._quotas.pop(resource, None)
            else:
                self._quotas[resource] = limit

    def quota(self, resource: str) -> int | None:
        with self._lock:
            return self._quotas.get(resource)

    # --- failing calls -----------------------------------------------------------
    def fail_next(
        self,
        count: int,
        *,
        method: str | None = None,
        path: str = "*",
        status: int = 503,
        raw_text: str | None = None,
    ) -> None:
        """The next `count` requests matching `method` (None: any) and the glob `path`
        (e.g. `*/servers/*/action`) fail with `status`: a 409 answers `transient_state`,
        another status a short JSON message, or `raw_text` as a text/plain body."""
        with self._lock:
            self._failures.append(_Failure(count, method, path, status, raw_text))

    def failure_for(self, method: str, path: str) -> ScalewayError | None:
        with self._lock:
            for failure in self._failures:
                if failure.remaining > 0 and failure.matches(method, path):
                    failure.remaining -= 1
                    return failure.error(path)
            return None

    def pending_failures(self) -> int:
        with self._lock:
            return sum(f.remaining for f in self._failures)

    def clear_failures(self) -> None:
        """Scaleway answers again: every failure still pending is dropped."""
        with self._lock:
            self._failures.clear()
