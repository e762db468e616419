"""The Mock provider's promises: idempotent create (also after an interrupted one),
idempotent terminate, volumes outliving servers until deleted."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from inventiv_common.db.engine import make_session_factory
from inventiv_common.db.models import MockServer
from inventiv_common.providers.base import ServerSpec
from inventiv_common.providers.mock import MockProvider
from inventiv_common.providers.mock_runtime import ProcessRuntime, SimulatedRuntime
from tests.support.instances import mock_spec


def _spec(name: str) -> ServerSpec:
    return mock_spec(name)


async def test_create_and_terminate_are_idempotent(engine: AsyncEngine) -> None:
    provider = MockProvider(make_session_factory(engine), SimulatedRuntime())
    name = str(uuid.uuid4())
    first = await provider.create(_spec(name))
    again = await provider.create(_spec(name))
    assert first.provider_id == again.provider_id and again.running
    volumes = [v for v in await provider.list_volumes() if v.server_id == first.provider_id]
    assert len(volumes) == 1
    await provider.terminate(first.provider_id)
    await provider.terminate(first.provider_id)  # already gone: still fine
    assert await provider.find_by_name(name) is None
    orphaned = [v for v in await provider.list_volumes() if v.provider_id == volumes[0].provider_id]
    assert orphaned and orphaned[0].server_id is None  # the volume outlives its server
    await provider.delete_volume(volumes[0].provider_id)
    assert all(v.provider_id != volumes[0].provider_id for v in await provider.list_volumes())


async def test_an_interrupted_create_is_completed_and_its_strays_stopped(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    sessions = make_session_factory(engine)
    provider = MockProvider(sessions, ProcessRuntime(tmp_path))
    name, server_id = str(uuid.uuid4()), "mock-" + uuid.uuid4().hex[:12]
    # What a crash leaves: the server recorded as starting, a runtime nobody recorded.
    async with sessions() as session:
        session.add(
            MockServer(
                id=server_id,
                name=name,
                zone="local-1",
                commercial_type="MOCK-GPU-S",
                status="starting",
                runtime="process",
            )
        )
        await session.commit()
    # A process that stays until stopped (the 120 s only bound a leak if the test dies).
    stray = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"],
        env={**os.environ, "WORKER_ID": server_id},
        start_new_session=True,
    )
    try:
        server = await provider.create(_spec(name))
        assert server.provider_id == server_id and server.running
        assert stray.wait(timeout=30) is not None  # replaced, not left running beside
        agent = psutil.Process(server.details["agent_pid"])
        assert agent.environ()["WORKER_ID"] == server_id
    finally:
        if stray.poll() is None:
            stray.kill()
        await provider.terminate(server_id)


async def test_creates_made_together_are_recorded_together(engine: AsyncEngine) -> None:
    """A provisioning batch gathers its creates: the Mock records them in one
    transaction (one created_at, PostgreSQL's transaction time), each with its own
    server and boot volume, and a create asked twice in the batch makes one server."""
    provider = MockProvider(make_session_factory(engine), SimulatedRuntime())
    names = [str(uuid.uuid4()) for _ in range(12)]
    made = await asyncio.gather(*(provider.create(_spec(name)) for name in [*names, names[0]]))
    assert made[0].provider_id == made[-1].provider_id
    assert len({server.provider_id for server in made}) == 12
    assert all(server.running and len(server.volumes) <= 1 for server in made)
    async with engine.connect() as conn:
        stamps = (
            (await conn.execute(select(MockServer.created_at).where(MockServer.name.in_(names))))
            .scalars()
            .all()
        )
    assert len(stamps) == 12 and len(set(stamps)) == 1
    volumes = [v for v in await provider.list_volumes() if v.name.removesuffix("-boot") in names]
    assert len(volumes) == 12
    # Asked again later (a retried create), each finds what it made.
    again = await provider.create(_spec(names[5]))
    assert again.provider_id == made[5].provider_id


async def test_a_terminated_server_leaves_no_worker_token_behind(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    from inventiv_common.providers.mock_runtime import WORKER_TOKEN_FILE
    from inventiv_worker.link import TOKEN_FILE

    assert WORKER_TOKEN_FILE == TOKEN_FILE  # the name the agent writes
    provider = MockProvider(make_session_factory(engine), ProcessRuntime(tmp_path))
    server = await provider.create(_spec(str(uuid.uuid4())))
    state_dir = Path(server.details["state_dir"])
    # What the agent writes once it has registered.
    (state_dir / WORKER_TOKEN_FILE).write_text("wt_secret")
    await provider.terminate(server.provider_id)
    assert not (state_dir / WORKER_TOKEN_FILE).exists()
    assert (state_dir / "agent.log").exists()  # what it said stays for a look
