"""Worker token revocations told to the other orchestrator replicas.

Each replica caches the tokens it has seen (`TokenCache`), so a steady heartbeat costs
no database read. When this replica revokes an instance's tokens (a new registration,
a termination), the others must stop trusting their cached copies: a notice on the
orchestrator channel names the instances, and every other replica drops their tokens.
Notices are batched (a fleet re-registering sends a few, not hundreds). A notice lost
with Redis leaves the cache TTL as the bound, as before.
"""

from __future__ import annotations

import uuid

from inventiv_common.bus import Envelope
from inventiv_common.messages import EVT_WORKER_TOKENS_REVOKED, Channel
from inventiv_orchestrator.context import Context
from inventiv_orchestrator.loops.base import Loop


class RevocationNotices(Loop):
    name = "token-revocations"
    min_gap_s = 0.1  # a burst of revocations goes out in one notice

    def __init__(self, ctx: Context) -> None:
        super().__init__(interval_s=5.0)
        self.ctx = ctx
        self.replica = str(uuid.uuid4())
        ctx.tokens.on_revoke = self.wake

    async def run_once(self) -> int:
        revoked = self.ctx.tokens.take_revoked()
        if revoked:
            notice = Envelope(
                type=EVT_WORKER_TOKENS_REVOKED,
                payload={"replica": self.replica, "instances": sorted(map(str, revoked))},
            )
            await self.ctx.bus.publish_safe(notice, Channel.orchestrator)
        return len(revoked)

    async def on_notice(self, envelope: Envelope) -> None:
        """Another replica revoked these instances' tokens: forget our cached copies."""
        if envelope.payload.get("replica") == self.replica:
            return
        for value in envelope.payload.get("instances", []):
            try:
                self.ctx.tokens.drop_instance(uuid.UUID(str(value)))
            except ValueError:
                continue
