"""Every request through the gateway yields one usage record, written off the request
path: records wait in memory and go to PostgreSQL in batches (the detail rows in
finops.inference_usage, the running totals in instance_request_metrics) with one
EVT:INFERENCE_USAGE_RECORDED per batch on the finops channel.

A record is journaled before the meter takes it (journal.py: one line appended to a
local file, a few microseconds), and forgotten once its row is committed, so an api
killed at any moment loses no record it took: the next api to start on the same
journal directory, or a replica beside it on the same host, adopts what was left and
writes it. A local file rather than a Redis stream because it costs one write() on the
hot path and survives what it must (the process) without making Redis, which keeps
nothing on disk here, hold state that matters; journal.py says what it guarantees.

The record of an answer is taken before the answer's last byte is sent (the end of a
stream is held back for it), so a client that received an answer whole was metered,
whenever the api dies after. An answer the api dies in the middle of, before its end
was sent, is not metered: the client got a broken answer through no fault of its own,
and the engine's work on it is the platform's loss, at most the requests in flight at
the crash. Between the record and the last byte lies a moment where a crash meters an
answer its client never got whole: the platform errs on that side, the side of the work
the engine did, rather than give answers away unmetered.

A batch that cannot be written (PostgreSQL down) stays at the head of the buffer and
is retried; rows are keyed by request id, so a batch retried after a commit whose
answer was lost, or a journaled record replayed after it was committed, is not inserted
twice. The buffer is bounded: past MAX_PENDING the oldest records are dropped and
counted, and the journal lets them go with them, so a long outage can exhaust neither
memory nor disk.

The meter is a loop: it writes what is pending every second, and once more at
shutdown so that what was metered since the last pass is not lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, make_url, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventiv_api.gateway.journal import Journal
from inventiv_api.settings import ApiSettings
from inventiv_common.bus import Envelope, EventBus
from inventiv_common.db.models import InstanceRequestMetrics
from inventiv_common.loops import Loop
from inventiv_common.messages import EVT_INFERENCE_USAGE_RECORDED
from inventiv_common.settings import ConfigError

log = logging.getLogger(__name__)
MAX_PENDING = 200_000
# A batch's own work (COPY encoding, totals) runs on the event loop in one go, holding
# every request meanwhile: small batches keep each such pause short.
BATCH = 200
COLUMNS = (
    "request_id",
    "occurred_at",
    "organization_id",
    "user_id",
    "api_key_id",
    "instance_id",
    "model_id",
    "model_name",
    "endpoint",
    "stream",
    "prompt_tokens",
    "completion_tokens",
    "time_to_first_token_ms",
    "latency_ms",
    "status_code",
    "status",
    "total_tokens",
)
# SQL built from the fixed column names above, never from input. The staging table is
# per connection and emptied at each commit.
_COLUMN_LIST = ", ".join(COLUMNS)
STAGING_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS usage_batch ON COMMIT DELETE ROWS AS "  # noqa: S608
    f"SELECT {_COLUMN_LIST} FROM finops.inference_usage WITH NO DATA"
)
INSERT_NEW = (
    f"INSERT INTO finops.inference_usage ({_COLUMN_LIST}) "  # noqa: S608
    f"SELECT {_COLUMN_LIST} FROM usage_batch "
    "ON CONFLICT (request_id, occurred_at) DO NOTHING RETURNING request_id"
)


@dataclass(frozen=True)
class Usage:
    request_id: str
    occurred_at: datetime
    organization_id: uuid.UUID
    user_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    instance_id: uuid.UUID
    model_id: uuid.UUID
    model_name: str
    endpoint: str
    stream: bool
    prompt_tokens: int
    completion_tokens: int
    time_to_first_token_ms: int | None
    latency_ms: int
    status_code: int
    status: str  # success | error | client_closed

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Meter(Loop):
    name = "gateway-meter"

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        bus: EventBus,
        *,
        interval_s: float = 1.0,
        journal: Journal[Usage] | None = None,
        max_pending: int = MAX_PENDING,
    ) -> None:
        super().__init__(interval_s)
        self.session_factory = session_factory
        self.bus = bus
        self.journal = journal
        self.max_pending = max_pending
        self.pending: deque[Usage] = deque()
        self.written = 0
        self.dropped = 0
        self._lock = asyncio.Lock()

    def record(self, usage: Usage) -> None:
        """Take one record: journaled first, so that from here on the death of the
        process cannot lose it."""
        if self.journal is not None:
            self.journal.append(usage)
        self._keep(usage)

    def _keep(self, usage: Usage) -> None:
        if len(self.pending) >= self.max_pending:
            self.pending.popleft()
            self.dropped += 1
            if self.journal is not None:
                self.journal.settle(1)
        self.pending.append(usage)

    async def flush(self) -> int:
        """Write what was pending when the pass began, batch by batch; returns how many
        were written. Stops at the first batch that fails (it stays pending). What is
        taken meanwhile waits for the next pass, so that a pass ends under steady load
        and the journal begins a new file at each."""
        written = 0
        async with self._lock:  # a pass and the shutdown flush never overlap
            if self.journal is not None:
                # What dead processes left comes in with the rest. A journal in trouble
                # must not keep the records from PostgreSQL.
                try:
                    adopted = await self.journal.maintain()
                except Exception:
                    log.exception("usage journal maintenance failed")
                    adopted = []
                for usage in adopted:
                    self._keep(usage)
            due = len(self.pending)
            while due > 0 and self.pending:
                batch = [self.pending[i] for i in range(min(BATCH, due, len(self.pending)))]
                dropped = self.dropped
                try:
                    await self._write(batch)
                except Exception as exc:
                    log.warning(
                        "usage batch not written; will retry",
                        extra={"records": len(batch), "error": str(exc)[:300]},
                    )
                    break
                # Records the bound dropped meanwhile were the oldest: this batch's first.
                done = max(0, len(batch) - (self.dropped - dropped))
                for _ in range(done):
                    self.pending.popleft()
                if self.journal is not None:
                    self.journal.settle(done)
                due -= len(batch)
                written += len(batch)
                self.written += len(batch)
                await self.bus.publish_safe(
                    Envelope(type=EVT_INFERENCE_USAGE_RECORDED, payload={"records": len(batch)})
                )
        return written

    async def _write(self, batch: list[Usage]) -> None:
        async with self.session_factory() as session:
            # COPY the batch into a session-local table, then insert what is new from
            # it: the rows travel in the binary COPY format, so the event loop spends
            # little on thousands of records (a statement with thousands of parameter
            # sets costs it tens of milliseconds).
            # Through the session first: that opens the transaction the COPY joins (on its
            # own the driver would autocommit, and the staging rows vanish at once).
            await session.execute(text(STAGING_TABLE))
            driver = (await (await session.connection()).get_raw_connection()).driver_connection
            assert driver is not None
            await driver.copy_records_to_table(
                "usage_batch",
                records=[(*(getattr(u, c) for c in COLUMNS[:-1]), u.total_tokens) for u in batch],
                columns=COLUMNS,
            )
            fresh = {row[0] for row in await driver.fetch(INSERT_NEW)}
            # A retried batch whose first commit went through unseen: only new rows count.
            totals = _totals([u for u in batch if u.request_id in fresh])
            if not totals:
                await session.commit()
                return
            metrics = pg_insert(InstanceRequestMetrics).values(totals)
            added = metrics.excluded
            table = InstanceRequestMetrics
            await session.execute(
                metrics.on_conflict_do_update(
                    index_elements=["instance_id"],
                    set_={
                        "total_requests": table.total_requests + added.total_requests,
                        "successful_requests": table.successful_requests
                        + added.successful_requests,
                        "failed_requests": table.failed_requests + added.failed_requests,
                        "input_tokens": table.input_tokens + added.input_tokens,
                        "output_tokens": table.output_tokens + added.output_tokens,
                        "total_tokens": table.total_tokens + added.total_tokens,
                        "first_request_at": func.least(
                            table.first_request_at, added.first_request_at
                        ),
                        "last_request_at": func.greatest(
                            table.last_request_at, added.last_request_at
                        ),
                        "updated_at": func.now(),
                    },
                )
            )
            await session.commit()

    async def run_once(self) -> int:
        return await self.flush()

    async def close(self) -> None:
        """At shutdown: the final flush, then the journal let go; what could not be
        written stays in it for the next start."""
        while self.pending and await self.flush():
            pass
        if self.journal is not None:
            async with self._lock:
                self.journal.close()

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "pending": len(self.pending),
            "written": self.written,
            "dropped": self.dropped,
            "journal": self.journal.status() if self.journal is not None else None,
        }


def open_journal(settings: ApiSettings) -> Journal[Usage] | None:
    """The meter's journal, in its directory for this database. A directory set on
    purpose that cannot be used stops the api; the default one (say, a read-only
    working directory) only costs the guarantee, said once in the log."""
    assert settings.database_url, "checked by check_ready_to_start"
    directory = journal_directory(settings.meter_journal_path, settings.database_url)
    try:
        return Journal(directory, encode_usage, decode_usage)
    except OSError as exc:
        if settings.meter_journal_dir:
            raise ConfigError(f"METER_JOURNAL_DIR cannot be used: {exc}") from None
        log.error(
            "the usage journal cannot be opened: records live in memory only, and an api "
            "killed loses those not yet written (set METER_JOURNAL_DIR to a writable place)",
            extra={"directory": str(directory), "error": str(exc)[:300]},
        )
        return None


def journal_directory(base: Path, database_url: str) -> Path:
    """One directory per database, so that apis of different databases given the same
    base never replay each other's records (their instances would not exist there)."""
    url = make_url(database_url)
    host = url.host or str(url.query.get("host", ""))
    digest = hashlib.sha256(f"{host}:{url.port or 5432}/{url.database}".encode()).hexdigest()
    return base / f"{re.sub(r'[^A-Za-z0-9_-]', '_', url.database or 'db')[:40]}-{digest[:12]}"


# -- the journal's line format: a JSON array, the fields in order after its version;
# UUIDs as integers and the moment in microseconds since the epoch, which cost the hot
# path far less than their text forms and come back exactly.
JOURNAL_FORMAT = 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
_compact = json.JSONEncoder(separators=(",", ":")).encode


def encode_usage(u: Usage) -> bytes:
    return _compact(
        [
            JOURNAL_FORMAT,
            u.request_id,
            (u.occurred_at - EPOCH) // MICROSECOND,
            u.organization_id.int,
            None if u.user_id is None else u.user_id.int,
            None if u.api_key_id is None else u.api_key_id.int,
            u.instance_id.int,
            u.model_id.int,
            u.model_name,
            u.endpoint,
            u.stream,
            u.prompt_tokens,
            u.completion_tokens,
            u.time_to_first_token_ms,
            u.latency_ms,
            u.status_code,
            u.status,
        ]
    ).encode()


def decode_usage(line: bytes) -> Usage:
    """The record of one journal line; ValueError (or TypeError) if it is not one, so
    that a damaged line is skipped rather than poisoning a batch."""
    fields = json.loads(line)
    if not isinstance(fields, list) or len(fields) != 17 or fields[0] != JOURNAL_FORMAT:
        raise ValueError("not a usage record of this format")
    (_, request_id, moment, org, user, key, instance, model) = fields[:8]
    (model_name, endpoint, stream, prompt, completion, ttft, latency, code, status) = fields[8:]
    texts = (request_id, model_name, endpoint, status)
    counts = (moment, prompt, completion, latency, code, 0 if ttft is None else ttft)
    if (
        not all(isinstance(t, str) for t in texts)
        or not all(type(n) is int for n in counts)
        or not isinstance(stream, bool)
    ):
        raise ValueError("a usage record with a field of the wrong type")
    return Usage(
        request_id=request_id,
        occurred_at=EPOCH + moment * MICROSECOND,
        organization_id=uuid.UUID(int=org),
        user_id=None if user is None else uuid.UUID(int=user),
        api_key_id=None if key is None else uuid.UUID(int=key),
        instance_id=uuid.UUID(int=instance),
        model_id=uuid.UUID(int=model),
        model_name=model_name,
        endpoint=endpoint,
        stream=stream,
        prompt_tokens=prompt,
        completion_tokens=completion,
        time_to_first_token_ms=ttft,
        latency_ms=latency,
        status_code=code,
        status=status,
    )


def _totals(batch: list[Usage]) -> list[dict[str, Any]]:
    """Per instance: the increments of its running totals."""
    totals: dict[uuid.UUID, dict[str, Any]] = {}
    for u in batch:
        t = totals.setdefault(
            u.instance_id,
            {
                "instance_id": u.instance_id,
                "total_requests": 0,
                "successful_requests": 0,
                "failed_requests": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "total_tokens": 0,
                "first_request_at": u.occurred_at,
                "last_request_at": u.occurred_at,
            },
        )
        t["total_requests"] += 1
        t["successful_requests" if u.status == "success" else "failed_requests"] += 1
        t["input_tokens"] += u.prompt_tokens
        t["output_tokens"] += u.completion_tokens
        t["total_tokens"] += u.total_tokens
        t["first_request_at"] = min(t["first_request_at"], u.occurred_at)
        t["last_request_at"] = max(t["last_request_at"], u.occurred_at)
    return list(totals.values())
