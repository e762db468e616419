"""What the orchestrator's loops and handlers share in one process."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventiv_common.bus import EventBus
from inventiv_common.crypto import KeyRing
from inventiv_common.providers.base import CloudProvider
from inventiv_common.providers.mock import MockProvider
from inventiv_common.providers.mock_runtime import build_runtime
from inventiv_common.providers.mock_timing import MockTimings
from inventiv_orchestrator.accounts import Accounts
from inventiv_orchestrator.settings import OrchestratorSettings
from inventiv_orchestrator.workers.service import TokenCache


@dataclass
class Context:
    settings: OrchestratorSettings
    session_factory: async_sessionmaker[AsyncSession]
    bus: EventBus
    keyring: KeyRing
    # The platform's own account of each provider.
    providers: dict[str, CloudProvider]
    http: httpx.AsyncClient
    # Worker tokens seen recently; whoever revokes tokens here drops them from it.
    tokens: TokenCache = field(default_factory=TokenCache)
    # Organizations' own accounts beside the platform's (None: the platform's only).
    accounts: Accounts | None = None

    def provider(self, code: str) -> CloudProvider:
        provider = self.providers.get(code)
        if provider is None:
            raise KeyError(f"no provider {code!r} is configured in this orchestrator")
        return provider

    async def provider_for(self, code: str, organization_id: uuid.UUID | None) -> CloudProvider:
        """The account that acts for this organization (raises KeyError if none)."""
        if self.accounts is None or organization_id is None:
            return self.provider(code)
        return await self.accounts.for_organization(code, organization_id)

    async def every_account(self) -> list[tuple[str, CloudProvider]]:
        """Every account the orchestrator may have servers and volumes in."""
        if self.accounts is None:
            return list(self.providers.items())
        return await self.accounts.every()


def build_providers(
    settings: OrchestratorSettings, session_factory: async_sessionmaker[AsyncSession]
) -> dict[str, CloudProvider]:
    runtime = build_runtime(
        settings.mock_runtime,
        home=Path(settings.inventiv_home).resolve(),
        docker_image=settings.mock_docker_image,
        timings=MockTimings(
            boot_s=settings.mock_boot_delay_s,
            install_s=settings.mock_install_delay_s,
            engine_startup_s=settings.mock_engine_startup_delay_s,
        ),
        engine_flags=settings.mock_engine_flags,
    )
    mock = MockProvider(session_factory, runtime, fail_creates=settings.mock_fail_creates)
    return {"mock": mock}
