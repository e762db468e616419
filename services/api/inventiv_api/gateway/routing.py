"""Where a request for a model goes: the ready instances that serve it.

The table is a snapshot of PostgreSQL (ready instances, activated both ways, of active
and activated models), so choosing an instance costs no query. `RouteRefresh` keeps it
current: every second, and at once when woken because an instance changed state; it
also closes the pooled connections to engines that left the table. Among the instances
of a model in the caller's organization, the one with the fewest requests in flight
(ours, plus the queue its worker reports) is chosen. An instance that fails several
times in a row is left out for a while. The table also knows each model's context
length, so bounding a request's tokens costs no query either.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventiv_api.gateway.errors import DATABASE_DOWN
from inventiv_api.gateway.upstream import UpstreamPool
from inventiv_common import instance_secrets
from inventiv_common.crypto import DecryptionError, KeyRing
from inventiv_common.db.models import Instance, Model
from inventiv_common.lifecycle import InstanceStatus
from inventiv_common.loops import Loop, PassFailed

log = logging.getLogger(__name__)
FAILURES_BEFORE_EJECTION = 3
EJECTION_S = 10.0


@dataclass
class Endpoint:
    instance_id: uuid.UUID
    organization_id: uuid.UUID
    model_id: uuid.UUID
    model_name: str
    host: str
    port: int
    engine_key: str
    # The model's, in tokens: no request may ask for more (validation.py).
    context_length: int = 0
    queue_depth: int = 0
    # Live counters, kept across refreshes of the same instance.
    in_flight: int = 0
    failures: int = 0
    ejected_until: float = 0.0

    @property
    def load(self) -> int:
        return self.in_flight + self.queue_depth


@dataclass
class RouteTable:
    session_factory: async_sessionmaker[AsyncSession]
    keyring: KeyRing
    # (organization, model name) -> endpoints
    routes: dict[tuple[uuid.UUID, str], list[Endpoint]] = field(default_factory=dict)
    _by_instance: dict[uuid.UUID, Endpoint] = field(default_factory=dict)
    _unreadable: set[uuid.UUID] = field(default_factory=set)

    async def refresh(self) -> None:
        async with self.session_factory() as session:
            rows = (
                await session.execute(
                    select(Instance, Model.model_id, Model.context_length)
                    .join(Model, Model.id == Instance.model_id)
                    .where(
                        Instance.status == InstanceStatus.ready.value,
                        Instance.technical_activation.is_(True),
                        Instance.economic_activation.is_(True),
                        Model.is_active.is_(True),
                        Model.technical_activation.is_(True),
                        Model.economic_activation.is_(True),
                    )
                )
            ).all()
        routes: dict[tuple[uuid.UUID, str], list[Endpoint]] = {}
        by_instance: dict[uuid.UUID, Endpoint] = {}
        for instance, model_name, context_length in rows:
            org, port = instance.organization_id, instance.worker_engine_port
            if org is None or instance.model_id is None or not instance.ip_address or not port:
                continue  # nowhere to send a request, or nobody it belongs to
            endpoint = self._by_instance.get(instance.id)
            if endpoint is None:
                # Decrypted once per instance, not once per refresh.
                try:
                    engine_key = instance_secrets.open_secrets(instance, self.keyring).engine_key
                except DecryptionError:
                    # Sealed with a key this process lacks: unroutable, but not a reason
                    # to stop routing to every other instance. Said once per instance.
                    if instance.id not in self._unreadable:
                        self._unreadable.add(instance.id)
                        log.error(
                            "engine key unreadable with the configured PROVIDER_SETTINGS_KEY",
                            extra={"instance_id": str(instance.id)},
                        )
                    continue
                endpoint = Endpoint(
                    instance_id=instance.id,
                    organization_id=org,
                    model_id=instance.model_id,
                    model_name=model_name,
                    host=instance.ip_address,
                    port=port,
                    engine_key=engine_key,
                )
            endpoint.queue_depth = instance.worker_queue_depth or 0
            endpoint.context_length = context_length
            by_instance[instance.id] = endpoint
            routes.setdefault((endpoint.organization_id, model_name), []).append(endpoint)
        self.routes, self._by_instance = routes, by_instance

    def addresses(self) -> set[tuple[str, int]]:
        """The engines the table routes to, as (host, port)."""
        return {(e.host, e.port) for e in self._by_instance.values()}

    def models(self, organization_id: uuid.UUID) -> list[str]:
        return sorted(name for org, name in self.routes if org == organization_id)

    def context_length(self, organization_id: uuid.UUID, model_name: str) -> int | None:
        """The model's context length in tokens; None if nothing serves it."""
        endpoints = self.routes.get((organization_id, model_name))
        return endpoints[0].context_length if endpoints else None

    async def known_model(self, organization_id: uuid.UUID, model_name: str) -> bool:
        """Whether the organization has such a model at all, served or not (a query:
        asked only when nothing serves it, to tell an unknown model from one not
        ready yet)."""
        async with self.session_factory() as session:
            found = await session.scalar(
                select(Model.id).where(
                    Model.model_id == model_name,
                    Model.is_active.is_(True),
                    or_(
                        Model.organization_id.is_(None),
                        Model.organization_id == organization_id,
                    ),
                )
            )
        return found is not None

    def pick(
        self,
        organization_id: uuid.UUID,
        model_name: str,
        exclude: tuple[uuid.UUID, ...] = (),
    ) -> Endpoint | None:
        """The least loaded usable endpoint, ties broken at random; None if none."""
        now = time.monotonic()
        candidates = [
            e
            for e in self.routes.get((organization_id, model_name), ())
            if e.ejected_until <= now and e.instance_id not in exclude
        ]
        if not candidates:
            return None
        least = min(e.load for e in candidates)
        return random.choice([e for e in candidates if e.load == least])  # noqa: S311

    def report(self, endpoint: Endpoint, *, ok: bool) -> None:
        if ok:
            endpoint.failures = 0
            return
        endpoint.failures += 1
        if endpoint.failures >= FAILURES_BEFORE_EJECTION:
            endpoint.ejected_until = time.monotonic() + EJECTION_S
            endpoint.failures = 0
            log.warning(
                "instance taken out of rotation",
                extra={"instance_id": str(endpoint.instance_id), "for_s": EJECTION_S},
            )


class RouteRefresh(Loop):
    """Keeps a route table current. A refresh that fails (PostgreSQL away) keeps the last
    snapshot serving and is retried at the next pass."""

    name = "gateway-routes"

    def __init__(self, table: RouteTable, pool: UpstreamPool, interval_s: float = 1.0) -> None:
        super().__init__(interval_s)
        self.table = table
        self.pool = pool

    async def run_once(self) -> int:
        try:
            await self.table.refresh()
        except DATABASE_DOWN as exc:
            # The table keeps serving what it knew; one line a second, not a traceback.
            raise PassFailed(f"routes not refreshed, PostgreSQL unreachable: {exc}"[:300]) from exc
        # An instance that left the table will not be asked again: its idle connections
        # would only wait for their timeout (or for the engine to close them).
        self.pool.keep_only(self.table.addresses())
        return len(self.table.routes)

    def status(self) -> dict[str, Any]:
        return {**super().status(), "routes": len(self.table.routes)}
