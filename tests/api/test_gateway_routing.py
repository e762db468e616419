"""The gateway's route table against real PostgreSQL: which instances serve a model to
whom, least-loaded choice, and instances taken out of rotation after failures."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from inventiv_api.gateway.routing import FAILURES_BEFORE_EJECTION, RouteRefresh, RouteTable
from inventiv_api.gateway.upstream import UpstreamPool, _Connection
from inventiv_common import instance_secrets
from inventiv_common.crypto import KeyRing
from inventiv_common.db.engine import make_session_factory
from inventiv_common.db.models import Instance, InstanceType, Model, Organization, Zone
from inventiv_common.loops import Loop
from inventiv_common.settings import DEV_SECRET_FALLBACK
from tests.support.mock_engine import MOCK_MODEL
from tests.support.waiting import wait_until_async

KEYRING = KeyRing(DEV_SECRET_FALLBACK)


class Fleet:
    def __init__(self, engine: AsyncEngine) -> None:
        self.sessions = make_session_factory(engine)
        self.engine_keys: dict[uuid.UUID, str] = {}

    async def organization(self) -> uuid.UUID:
        async with self.sessions() as session:
            org = Organization(name="Routing", slug=f"routing-{uuid.uuid4().hex[:8]}")
            session.add(org)
            await session.commit()
            return org.id

    async def instance(self, org: uuid.UUID, *, status: str = "ready", **columns: object):
        async with self.sessions() as session:
            model = await session.scalar(select(Model).where(Model.model_id == MOCK_MODEL))
            itype = await session.scalar(
                select(InstanceType).where(InstanceType.code == "MOCK-GPU-S")
            )
            zone = await session.scalar(select(Zone).where(Zone.code == "local-1"))
            assert model and itype and zone
            instance = Instance(
                organization_id=org,
                provider_id=itype.provider_id,
                instance_type_id=itype.id,
                zone_id=zone.id,
                model_id=model.id,
                status=status,
                ip_address="127.0.0.1",
                worker_engine_port=40000 + len(self.engine_keys),
                **columns,
            )
            session.add(instance)
            await session.flush()
            self.engine_keys[instance.id] = instance_secrets.ensure(instance, KEYRING).engine_key
            await session.commit()
            return instance.id


@pytest.fixture
async def fleet(engine: AsyncEngine) -> AsyncIterator[Fleet]:
    yield Fleet(engine)


async def test_only_ready_activated_instances_of_the_organization_serve(fleet: Fleet) -> None:
    org, other = await fleet.organization(), await fleet.organization()
    serving = await fleet.instance(org)
    await fleet.instance(org, status="starting")
    await fleet.instance(org, economic_activation=False)
    foreign = await fleet.instance(other)
    table = RouteTable(fleet.sessions, KEYRING)
    await table.refresh()

    assert table.models(org) == [MOCK_MODEL]
    chosen = table.pick(org, MOCK_MODEL)
    assert chosen is not None and chosen.instance_id == serving
    assert chosen.engine_key == fleet.engine_keys[serving]
    assert table.pick(org, MOCK_MODEL, exclude=(serving,)) is None
    assert table.pick(org, "no/such-model") is None
    assert table.pick(other, MOCK_MODEL).instance_id == foreign  # type: ignore[union-attr]

    # A model switched off stops serving everyone at the next refresh.
    async with fleet.sessions() as session:
        await session.execute(
            update(Model).where(Model.model_id == MOCK_MODEL).values(technical_activation=False)
        )
        await session.commit()
    try:
        await table.refresh()
        assert table.models(org) == [] and table.models(other) == []
    finally:
        async with fleet.sessions() as session:
            await session.execute(
                update(Model).where(Model.model_id == MOCK_MODEL).values(technical_activation=True)
            )
            await session.commit()


async def test_least_loaded_is_chosen_and_counters_survive_refresh(fleet: Fleet) -> None:
    org = await fleet.organization()
    busy = await fleet.instance(org)
    idle = await fleet.instance(org, worker_queue_depth=1)
    table = RouteTable(fleet.sessions, KEYRING)
    await table.refresh()
    endpoints = {e.instance_id: e for e in table.routes[(org, MOCK_MODEL)]}
    endpoints[busy].in_flight = 3
    await table.refresh()
    # 3 in flight here against a queue of 1 there.
    assert table.pick(org, MOCK_MODEL).instance_id == idle  # type: ignore[union-attr]
    assert {e.instance_id: e.in_flight for e in table.routes[(org, MOCK_MODEL)]}[busy] == 3


async def test_repeated_failures_take_an_instance_out_of_rotation(fleet: Fleet) -> None:
    org = await fleet.organization()
    first, second = await fleet.instance(org), await fleet.instance(org)
    table = RouteTable(fleet.sessions, KEYRING)
    await table.refresh()
    failing = next(e for e in table.routes[(org, MOCK_MODEL)] if e.instance_id == first)

    def picks() -> set[uuid.UUID]:
        return {table.pick(org, MOCK_MODEL).instance_id for _ in range(60)}  # type: ignore[union-attr]

    for _ in range(FAILURES_BEFORE_EJECTION - 1):
        table.report(failing, ok=False)
    table.report(failing, ok=True)  # a success resets the count
    for _ in range(FAILURES_BEFORE_EJECTION - 1):
        table.report(failing, ok=False)
    assert picks() == {first, second}  # equal load: both still chosen
    table.report(failing, ok=False)
    assert picks() == {second}


async def test_an_instance_sealed_with_another_key_is_skipped_not_fatal(fleet: Fleet) -> None:
    org = await fleet.organization()
    readable = await fleet.instance(org)
    other_keyring = KeyRing("another-secret-of-at-least-32-characters!")
    table = RouteTable(fleet.sessions, other_keyring)
    await table.refresh()
    assert table.models(org) == []  # nothing it can open
    table.keyring = KEYRING
    await table.refresh()
    assert table.pick(org, MOCK_MODEL).instance_id == readable  # type: ignore[union-attr]


async def test_engines_that_leave_the_table_lose_their_idle_connections(
    engine: AsyncEngine,
) -> None:
    fleet = Fleet(engine)
    org = await fleet.organization()
    staying, leaving = await fleet.instance(org), await fleet.instance(org)
    # Addresses no other test's instance has: the pool keeps whatever the table routes to.
    subnet = f"127.{random.randrange(1, 250)}.{random.randrange(250)}"
    async with fleet.sessions() as session:
        for host, instance_id in enumerate((staying, leaving), start=1):
            await session.execute(
                update(Instance)
                .where(Instance.id == instance_id)
                .values(ip_address=f"{subnet}.{host}")
            )
        await session.commit()
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def connection() -> _Connection:
        return _Connection(*await asyncio.open_connection("127.0.0.1", port))

    table, pool = RouteTable(fleet.sessions, KEYRING), UpstreamPool()
    refresh = RouteRefresh(table, pool)
    assert isinstance(refresh, Loop) and refresh.name == "gateway-routes"
    await refresh.run_once()
    by_id = {e.instance_id: (e.host, e.port) for e in table.routes[(org, MOCK_MODEL)]}
    conns = {key: await connection() for key in (by_id[staying], by_id[leaving], ("10.9.9.9", 1))}
    for key, conn in conns.items():
        pool._put(key, conn)

    await refresh.run_once()
    assert set(pool._idle) == {by_id[staying], by_id[leaving]}
    assert conns[("10.9.9.9", 1)].writer.is_closing()

    async with fleet.sessions() as session:
        await session.execute(
            update(Instance).where(Instance.id == leaving).values(status="terminating")
        )
        await session.commit()
    await refresh.run_once()
    assert set(pool._idle) == {by_id[staying]}
    assert conns[by_id[leaving]].writer.is_closing()
    assert not conns[by_id[staying]].writer.is_closing()
    assert refresh.status()["routes"] >= 1 and refresh.status()["last_error"] is None

    # wake() (an instance changed state): a second pass runs at once, not after interval_s.
    # The interval is an hour and the wait for the second pass a minute at most, so the
    # pass that comes can only be the wake-up's.
    slow = RouteRefresh(table, pool, interval_s=3600)
    stop = asyncio.Event()
    task = asyncio.create_task(slow.run(stop))

    async def passes(count: int) -> bool:
        return slow.passes >= count

    await wait_until_async(lambda: passes(1), 60, "the route refresh's first pass")
    assert slow.passes == 1  # now waiting for its interval
    slow.wake()
    await wait_until_async(lambda: passes(2), 60, "a pass right after wake()")
    task.cancel()
    await pool.close()
    server.close()


async def test_a_refresh_without_postgresql_is_one_line_and_the_last_error() -> None:
    from inventiv_common.db.engine import make_engine
    from inventiv_common.net import free_port

    dead = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    refresh = RouteRefresh(RouteTable(make_session_factory(dead), KEYRING), UpstreamPool())
    await refresh.run(asyncio.Event(), passes=1)
    assert refresh.last_error is not None
    assert refresh.last_error.startswith("routes not refreshed, PostgreSQL unreachable")
    await dead.dispose()
