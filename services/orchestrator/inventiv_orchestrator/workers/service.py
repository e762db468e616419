"""Registering workers and accepting their heartbeats. Nothing commits."""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_common import actions, instance_secrets
from inventiv_common.agent_checksum import expected_agent_checksum
from inventiv_common.db.models import Instance, WorkerAuthToken
from inventiv_common.lifecycle import InstanceStatus as S
from inventiv_common.transitions import log_action
from inventiv_orchestrator.settings import OrchestratorSettings

# Longer than a heartbeat interval, so a steady worker costs no database read. A token
# revoked by this process is dropped at once; another replica notices within the TTL.
TOKEN_CACHE_TTL_S = 60.0


class WorkerAuthError(Exception):
    def __init__(self, status: int, message: str, *, keep_changes: bool = False) -> None:
        super().__init__(message)
        self.status = status
        # True when what was recorded before refusing (a flag, a log) must be kept.
        self.keep_changes = keep_changes


@dataclass
class TokenCache:
    """token hash -> (instance id, expiry): heartbeats need no database read."""

    entries: dict[str, tuple[uuid.UUID, float]] = field(default_factory=dict)

    def get(self, token_hash: str) -> uuid.UUID | None:
        hit = self.entries.get(token_hash)
        if hit is None or hit[1] < time.monotonic():
            self.entries.pop(token_hash, None)
            return None
        return hit[0]

    def put(self, token_hash: str, instance_id: uuid.UUID) -> None:
        self.entries[token_hash] = (instance_id, time.monotonic() + TOKEN_CACHE_TTL_S)

    def drop_instance(self, instance_id: uuid.UUID) -> None:
        for key in [k for k, (i, _) in self.entries.items() if i == instance_id]:
            del self.entries[key]


async def register(
    *,
    session: AsyncSession,
    settings: OrchestratorSettings,
    bootstrap_secret: str,
    body: dict[str, object],
) -> tuple[uuid.UUID, str]:
    """Check the bootstrap secret and issue a new worker token (older ones revoked)."""
    try:
        instance_id = uuid.UUID(str(body.get("instance_id")))
    except ValueError:
        raise WorkerAuthError(400, "instance_id must be a UUID") from None
    instance = await session.get(Instance, instance_id, with_for_update=True)
    # Unknown instance and wrong secret look the same to the caller.
    if instance is None or not instance_secrets.bootstrap_matches(instance, bootstrap_secret):
        raise WorkerAuthError(401, "unknown instance or wrong bootstrap secret")
    if S(instance.status) in (S.terminating, S.terminated, S.failed):
        raise WorkerAuthError(409, f"instance is {instance.status}")
    expected = settings.expected_agent_checksum or expected_agent_checksum()
    reported = str(body.get("agent_checksum") or "")
    mismatch = expected is not None and reported != expected
    instance.worker_agent_version = str(body.get("agent_version") or "")[:64] or None
    instance.worker_agent_checksum = reported[:128] or None
    instance.worker_version_mismatch = mismatch
    if mismatch:
        log_action(
            session,
            instance,
            actions.WORKER_VERSION_MISMATCH,
            component="orchestrator",
            status="failed" if settings.refuse_agent_mismatch else "success",
            details={"expected": expected, "reported": reported},
        )
        if settings.refuse_agent_mismatch:
            await session.flush()
            raise WorkerAuthError(
                403, "agent checksum does not match the expected build", keep_changes=True
            )
    await session.execute(
        update(WorkerAuthToken)
        .where(WorkerAuthToken.instance_id == instance.id, WorkerAuthToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC), rotated_at=datetime.now(UTC))
    )
    token = "wt_" + secrets.token_urlsafe(32)
    session.add(
        WorkerAuthToken(
            instance_id=instance.id,
            token_hash=instance_secrets.secret_hash(token),
            token_prefix=token[:10],
        )
    )
    instance.worker_status = "registered"
    log_action(
        session,
        instance,
        actions.WORKER_REGISTERED,
        component="orchestrator",
        details={"agent_version": instance.worker_agent_version, "version_mismatch": mismatch},
    )
    await session.flush()
    return instance.id, token


async def instance_for_token(*, session: AsyncSession, cache: TokenCache, token: str) -> uuid.UUID:
    token_hash = instance_secrets.secret_hash(token)
    cached = cache.get(token_hash)
    if cached is not None:
        return cached
    row = await session.execute(
        select(WorkerAuthToken.instance_id)
        .join(Instance, Instance.id == WorkerAuthToken.instance_id)
        .where(
            WorkerAuthToken.token_hash == token_hash,
            WorkerAuthToken.revoked_at.is_(None),
            Instance.status.not_in([S.terminated.value]),
        )
    )
    instance_id = row.scalar_one_or_none()
    if instance_id is None:
        raise WorkerAuthError(401, "unknown or revoked worker token")
    cache.put(token_hash, instance_id)
    return instance_id
