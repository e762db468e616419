"""Registering workers and accepting their heartbeats. Nothing commits."""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_common import actions, instance_secrets
from inventiv_common.agent_checksum import expected_agent_checksum
from inventiv_common.db.models import ActionLog, Instance, WorkerAuthToken
from inventiv_common.lifecycle import InstanceStatus as S
from inventiv_common.transitions import action_values
from inventiv_orchestrator.settings import OrchestratorSettings

# Longer than a heartbeat interval, so a steady worker costs no database read. A token
# revoked by this process is dropped at once; another replica notices within the TTL.
TOKEN_CACHE_TTL_S = 60.0
INSTANCES = cast(Table, Instance.__table__)
TOKENS = cast(Table, WorkerAuthToken.__table__)
ACTION_LOGS = cast(Table, ActionLog.__table__)


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
    """Check the bootstrap secret and issue a new worker token (older ones revoked).

    Plain statements, not the ORM: a fleet coming up registers hundreds of workers in
    seconds, and the unit of work costs more CPU than the whole registration. What is
    written are facts the worker reports, so, like heartbeats, they leave the
    instance's version alone."""
    try:
        instance_id = uuid.UUID(str(body.get("instance_id")))
    except ValueError:
        raise WorkerAuthError(400, "instance_id must be a UUID") from None
    c = INSTANCES.c
    # The row lock serialises two registrations of one instance (one live token).
    instance = (
        await session.execute(
            select(c.id, c.status, c.organization_id, c.bootstrap_secret_hash)
            .where(c.id == instance_id)
            .with_for_update()
        )
    ).first()
    # Unknown instance and wrong secret look the same to the caller.
    if instance is None or not instance_secrets.hash_matches(
        instance.bootstrap_secret_hash, bootstrap_secret
    ):
        raise WorkerAuthError(401, "unknown instance or wrong bootstrap secret")
    if S(instance.status) in (S.terminating, S.terminated, S.failed):
        raise WorkerAuthError(409, f"instance is {instance.status}")
    expected = settings.expected_agent_checksum or expected_agent_checksum()
    reported = str(body.get("agent_checksum") or "")
    mismatch = expected is not None and reported != expected
    refused = mismatch and settings.refuse_agent_mismatch
    agent_version = str(body.get("agent_version") or "")[:64] or None
    facts = {
        "worker_agent_version": agent_version,
        "worker_agent_checksum": reported[:128] or None,
        "worker_version_mismatch": mismatch,
    }
    about = {"instance_id": instance.id, "organization_id": instance.organization_id}
    logs = []
    if mismatch:
        logs.append(
            action_values(
                actions.WORKER_VERSION_MISMATCH,
                component="orchestrator",
                status="failed" if refused else "success",
                details={"expected": expected, "reported": reported},
                **about,
            )
        )
    if refused:
        await session.execute(update(INSTANCES).where(c.id == instance.id).values(facts))
        await session.execute(insert(ACTION_LOGS), logs)
        raise WorkerAuthError(
            403, "agent checksum does not match the expected build", keep_changes=True
        )
    now = datetime.now(UTC)
    await session.execute(
        update(INSTANCES).where(c.id == instance.id).values(**facts, worker_status="registered")
    )
    await session.execute(
        update(TOKENS)
        .where(TOKENS.c.instance_id == instance.id, TOKENS.c.revoked_at.is_(None))
        .values(revoked_at=now, rotated_at=now)
    )
    token = "wt_" + secrets.token_urlsafe(32)
    await session.execute(
        insert(TOKENS).values(
            id=uuid.uuid4(),
            instance_id=instance.id,
            token_hash=instance_secrets.secret_hash(token),
            token_prefix=token[:10],
        )
    )
    logs.append(
        action_values(
            actions.WORKER_REGISTERED,
            component="orchestrator",
            details={"agent_version": agent_version, "version_mismatch": mismatch},
            **about,
        )
    )
    await session.execute(insert(ACTION_LOGS), logs)
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
