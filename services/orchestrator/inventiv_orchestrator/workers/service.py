"""Registering workers and accepting their heartbeats. Nothing commits."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    Insert,
    Select,
    Table,
    Text,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_common import actions, instance_secrets
from inventiv_common.actions import action_values
from inventiv_common.agent_checksum import expected_agent_checksum
from inventiv_common.db.models import ActionLog, Instance, WorkerAuthToken
from inventiv_common.lifecycle import InstanceStatus as S
from inventiv_orchestrator.settings import OrchestratorSettings

# Longer than a heartbeat interval, so a steady worker costs no database read. A token
# revoked by this process is dropped at once, and the other replicas are told over the
# bus (`revocations.RevocationNotices`); only a notice lost with Redis leaves one of them
# trusting a revoked token, for this long at most.
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
    # instance id -> its cached token hashes, so dropping an instance is not a scan.
    by_instance: dict[uuid.UUID, set[str]] = field(default_factory=dict)
    # Revoked here, not yet told to the other replicas; and who tells them.
    revoked: set[uuid.UUID] = field(default_factory=set)
    on_revoke: Callable[[], None] | None = None

    def get(self, token_hash: str) -> uuid.UUID | None:
        hit = self.entries.get(token_hash)
        if hit is None:
            return None
        if hit[1] < time.monotonic():
            self._forget(token_hash, hit[0])
            return None
        return hit[0]

    def put(self, token_hash: str, instance_id: uuid.UUID) -> None:
        self.entries[token_hash] = (instance_id, time.monotonic() + TOKEN_CACHE_TTL_S)
        self.by_instance.setdefault(instance_id, set()).add(token_hash)

    def revoke(self, instance_id: uuid.UUID) -> None:
        """This process revoked the instance's tokens: drop them, and have the other
        replicas told."""
        self.drop_instance(instance_id)
        self.revoked.add(instance_id)
        if self.on_revoke is not None:
            self.on_revoke()

    def take_revoked(self) -> set[uuid.UUID]:
        taken, self.revoked = self.revoked, set()
        return taken

    def drop_instance(self, instance_id: uuid.UUID) -> None:
        for token_hash in self.by_instance.pop(instance_id, set()):
            self.entries.pop(token_hash, None)

    def _forget(self, token_hash: str, instance_id: uuid.UUID) -> None:
        self.entries.pop(token_hash, None)
        hashes = self.by_instance.get(instance_id)
        if hashes is not None:
            hashes.discard(token_hash)
            if not hashes:
                del self.by_instance[instance_id]


def _registration_statements() -> tuple[Select[Any], Insert]:
    """Built once: a fleet coming up registers hundreds of workers in seconds, and
    building and compiling these costs more CPU than running them. Values are bound."""
    c, t = INSTANCES.c, TOKENS.c
    # Bound names differ from every column name: SQLAlchemy would take a parameter
    # named like a column of an UPDATE for one more value to SET.
    instance_id: BindParameter[uuid.UUID] = bindparam("p_instance")
    # Two registrations of one instance are serialised by an advisory lock, not the
    # row lock: the health loop holds instance rows while it moves a batch on, and a
    # fleet's registrations must not queue behind it. The commit need not wait for the
    # disk: a registration lost in a database crash costs the worker one more, as its
    # heartbeats then get 401 and it registers again. (Both ride along in the read.)
    read = select(
        c.id,
        c.status,
        c.organization_id,
        c.bootstrap_secret_hash,
        func.set_config("synchronous_commit", "off", True),
        func.pg_advisory_xact_lock(func.hashtextextended(sql_cast(c.id, Text), REGISTRATION_LOCK)),
    ).where(c.id == instance_id)
    # Every write is a CTE of the action log insert: one round trip. PostgreSQL runs
    # data-modifying CTEs whether read or not, on one snapshot, so the revocation does
    # not see the new token. The instance's own columns are not written here (see
    # `register`).
    revoked = (
        update(TOKENS)
        .where(t.instance_id == instance_id, t.revoked_at.is_(None))
        .values(revoked_at=bindparam("now"), rotated_at=bindparam("now"))
        .returning(t.id)
        .cte("revoked")
    )
    write = (
        insert(ACTION_LOGS)
        .values({name: bindparam(f"log_{name}") for name in LOG_COLUMNS})
        # How many tokens this revoked: only then are other replicas told.
        .returning(select(func.count()).select_from(revoked).scalar_subquery())
        .add_cte(
            revoked,
            insert(TOKENS)
            .values(
                id=bindparam("token_id"),
                instance_id=instance_id,
                token_hash=bindparam("p_token_hash"),
                token_prefix=bindparam("p_token_prefix"),
            )
            .cte("issued"),
        )
    )
    return read, write


LOG_COLUMNS = tuple(action_values("", component=""))
# The advisory lock space of registrations (a seed for hashing instance ids into it).
REGISTRATION_LOCK = 0x5245_4749
READ_FOR_REGISTRATION, WRITE_REGISTRATION = _registration_statements()


@dataclass(frozen=True)
class Registration:
    instance_id: uuid.UUID
    token: str
    # The instance's worker columns, for the heartbeat writer to apply (None: written).
    facts: dict[str, Any] | None
    # Live tokens of the instance this registration revoked (a worker registering again).
    revoked_tokens: int


async def register(
    *,
    session: AsyncSession,
    settings: OrchestratorSettings,
    bootstrap_secret: str,
    body: dict[str, object],
) -> Registration:
    """Check the bootstrap secret and issue a new worker token (older ones revoked).

    Plain statements, not the ORM: the unit of work would cost more CPU than the
    whole registration. The instance row is neither locked nor written: what the
    worker reports (registered, its version and checksum) is returned as facts for
    the heartbeat writer, which applies them within milliseconds, off the request; a
    fleet coming up must not wait on the rows the lifecycle loops hold. Only a
    checksum mismatch, rare and worth recording at once, writes the row here."""
    try:
        instance_id = uuid.UUID(str(body.get("instance_id")))
    except ValueError:
        raise WorkerAuthError(400, "instance_id must be a UUID") from None
    instance = (await session.execute(READ_FOR_REGISTRATION, {"p_instance": instance_id})).first()
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
    facts: dict[str, Any] = {
        "worker_agent_version": agent_version,
        "worker_agent_checksum": reported[:128] or None,
        "worker_version_mismatch": mismatch,
    }
    if not refused:
        facts["worker_status"] = "registered"
    about = {"instance_id": instance.id, "organization_id": instance.organization_id}
    if mismatch:
        mismatch_log = action_values(
            actions.WORKER_VERSION_MISMATCH,
            component="orchestrator",
            status="failed" if refused else "success",
            details={"expected": expected, "reported": reported},
            **about,
        )
        await session.execute(insert(ACTION_LOGS), [mismatch_log])
        await session.execute(update(INSTANCES).where(INSTANCES.c.id == instance.id).values(facts))
    if refused:
        raise WorkerAuthError(
            403, "agent checksum does not match the expected build", keep_changes=True
        )
    token = "wt_" + secrets.token_urlsafe(32)
    registered_log = action_values(
        actions.WORKER_REGISTERED,
        component="orchestrator",
        details={"agent_version": agent_version, "version_mismatch": mismatch},
        **about,
    )
    revoked_tokens = await session.scalar(
        WRITE_REGISTRATION,
        {
            "p_instance": instance.id,
            "now": datetime.now(UTC),
            "token_id": uuid.uuid4(),
            "p_token_hash": instance_secrets.secret_hash(token),
            "p_token_prefix": token[:10],
            **{f"log_{name}": value for name, value in registered_log.items()},
        },
    )
    return Registration(instance.id, token, None if mismatch else facts, revoked_tokens or 0)


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
