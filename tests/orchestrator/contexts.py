"""An orchestrator `Context` for driving one loop in a test: the settings it reads and
the parts the test gives (a session factory, providers); no bus, no keyring in use."""

from __future__ import annotations

from typing import Any, cast

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventiv_common.crypto import KeyRing
from inventiv_orchestrator.context import Context
from inventiv_orchestrator.settings import OrchestratorSettings


def loop_context(
    sessions: async_sessionmaker[AsyncSession] | None = None,
    providers: dict[str, Any] | None = None,
    **settings: Any,
) -> Context:
    return Context(
        OrchestratorSettings(
            DATABASE_URL="postgresql://unused/unused", REDIS_URL="redis://unused:6379/0", **settings
        ),
        cast(Any, sessions),
        cast(Any, None),
        KeyRing("k" * 32),
        providers or {},
        httpx.AsyncClient(),
    )
