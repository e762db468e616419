"""Watchdog: servers at the provider that carry our name but that no live instance
owns (a crash between create and record, a termination that half-happened) are
terminated and logged. The volumes they leave behind are the storage loop's."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from sqlalchemy import select

from inventiv_common import actions
from inventiv_common.actions import log_action
from inventiv_common.db.models import Instance
from inventiv_common.lifecycle import LIVE_STATES
from inventiv_common.providers.base import ProviderError
from inventiv_orchestrator.context import Context
from inventiv_orchestrator.loops.base import Loop

LIVE = [s.value for s in LIVE_STATES]

log = logging.getLogger(__name__)


class WatchdogLoop(Loop):
    name = "watchdog"

    def __init__(
        self, ctx: Context, interval_s: float, on_orphans_gone: Callable[[], None] | None = None
    ) -> None:
        super().__init__(interval_s)
        self.ctx = ctx
        # The volumes of terminated orphans are now detached: the storage loop's to delete.
        self.on_orphans_gone = on_orphans_gone

    async def run_once(self) -> int:
        acted = 0
        for code, provider in await self.ctx.every_account():
            try:
                servers = await provider.list_servers()
            except ProviderError as exc:
                # One account refused or away: the others are still watched.
                log.warning("servers not listed", extra={"provider": code, "error": str(exc)})
                continue
            names = {s.name for s in servers}
            async with self.ctx.session_factory() as session:
                ids = [uuid.UUID(n) for n in names if _is_uuid(n)]
                owned = (
                    set(
                        (
                            await session.scalars(
                                select(Instance.id).where(
                                    Instance.id.in_(ids), Instance.status.in_(LIVE)
                                )
                            )
                        ).all()
                    )
                    if ids
                    else set()
                )
                for server in servers:
                    if _is_uuid(server.name) and uuid.UUID(server.name) in owned:
                        continue
                    try:
                        await provider.terminate(server.provider_id)
                    except ProviderError:
                        continue  # next pass
                    instance = (
                        await session.get(Instance, uuid.UUID(server.name))
                        if _is_uuid(server.name)
                        else None
                    )
                    log_action(
                        session,
                        instance,
                        actions.ORPHAN_TERMINATED,
                        component="orchestrator",
                        details={
                            "provider": code,
                            "server": server.provider_id,
                            "name": server.name,
                        },
                    )
                    acted += 1
                await session.commit()
        if acted and self.on_orphans_gone is not None:
            self.on_orphans_gone()
        return acted


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
