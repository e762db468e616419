"""`inventiv mock-runtimes | worker-attach | worker-detach | mock-runtime-sync`: operate
the local runtimes behind Mock instances."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from sqlalchemy import select

from inventiv_common import instance_secrets
from inventiv_common.cli import dev_env
from inventiv_common.crypto import KeyRing
from inventiv_common.db.engine import make_engine, make_session_factory
from inventiv_common.db.models import Instance, Model
from inventiv_common.lifecycle import LIVE_STATES
from inventiv_common.providers.base import ServerSpec
from inventiv_common.providers.mock import MockProvider
from inventiv_common.providers.mock_runtime import build_runtime
from inventiv_common.providers.mock_timing import MockTimings
from inventiv_common.settings import DEV_SECRET_FALLBACK, ConfigError

LIVE = [s.value for s in LIVE_STATES]


def _keyring() -> KeyRing:
    path = os.environ.get("PROVIDER_SETTINGS_KEY_FILE")
    key = Path(path).read_text().strip() if path else os.environ.get("PROVIDER_SETTINGS_KEY")
    return KeyRing(key or DEV_SECRET_FALLBACK)


def _seconds(name: str) -> float:
    raw = os.environ.get(name) or "0"
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds")
    return value


async def run(command: str, instance_id: str | None, database_url: str) -> list[str]:
    engine = make_engine(database_url, pool_size=2, app_name="inventiv-cli")
    sessions = make_session_factory(engine)
    home = dev_env.home()
    runtime = build_runtime(
        os.environ.get("MOCK_RUNTIME", "process"),
        home=home,
        docker_image=os.environ.get("MOCK_DOCKER_IMAGE", "inventiv-worker:latest"),
        timings=MockTimings(
            boot_s=_seconds("MOCK_BOOT_DELAY_S"),
            install_s=_seconds("MOCK_INSTALL_DELAY_S"),
            engine_startup_s=_seconds("MOCK_ENGINE_STARTUP_DELAY_S"),
        ),
        engine_flags=os.environ.get("MOCK_ENGINE_FLAGS", ""),
    )
    provider = MockProvider(sessions, runtime)
    control_plane = os.environ.get("WORKER_CONTROL_PLANE_URL", "http://127.0.0.1:8003")
    heartbeat = float(os.environ.get("WORKER_HEARTBEAT_INTERVAL_S", "10"))
    lines: list[str] = []
    try:
        async with sessions() as session:
            instances = {
                str(i.id): (i, model)
                for i, model in (
                    await session.execute(
                        select(Instance, Model.model_id)
                        .join(Model, Model.id == Instance.model_id)
                        .where(Instance.status.in_(LIVE))
                    )
                ).tuples()
            }

        async def attach(iid: str) -> None:
            if iid not in instances:
                raise ConfigError(f"no live instance {iid}")
            instance, model = instances[iid]
            server = await provider.find_by_name(iid)
            if server is None:
                raise ConfigError(f"instance {iid} has no mock server yet")
            secrets = instance_secrets.open_secrets(instance, _keyring())
            spec = ServerSpec(
                iid,
                server.zone,
                "",
                model,
                control_plane,
                secrets.bootstrap_secret,
                secrets.engine_key,
                heartbeat,
            )
            await provider.restart_runtime(server.provider_id, spec)
            lines.append(f"attached {iid} ({server.provider_id})")

        servers = await provider.list_servers()
        if command == "mock-runtimes":
            for server in servers:
                owner = "live" if server.name in instances else "orphan"
                lines.append(
                    f"{server.provider_id}  {server.name}  {server.status:8} {owner}  "
                    f"health_port={server.health_port}"
                )
            lines.append(f"{len(servers)} mock server(s)")
        elif command == "worker-attach":
            assert instance_id is not None
            await attach(str(uuid.UUID(instance_id)))
        elif command == "worker-detach":
            assert instance_id is not None
            found = await provider.find_by_name(str(uuid.UUID(instance_id)))
            if found is None:
                raise ConfigError(f"no mock server for {instance_id}")
            await provider.stop_runtime(found.provider_id)
            lines.append(f"detached {instance_id} ({found.provider_id})")
        elif command == "mock-runtime-sync":
            for server in servers:
                if server.name not in instances:
                    await provider.stop_runtime(server.provider_id)
                    lines.append(f"stopped runtime of {server.name} (no live instance)")
                elif server.status == "stopped":
                    await attach(server.name)
            lines.append(f"in sync: {len(servers)} server(s) checked")
    finally:
        await engine.dispose()
    return lines
