"""The meter's journal against real PostgreSQL and real process deaths: what a process
SIGKILLed had taken is written once by the next, a living sibling's journal is left
alone, damaged lines are skipped, the journal is bounded like the meter, a full disk
costs the guarantee but no record, and a clean shutdown leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from inventiv_api.gateway import journal as journal_module
from inventiv_api.gateway.journal import Journal
from inventiv_api.gateway.metering import (
    Meter,
    Usage,
    decode_usage,
    encode_usage,
    journal_directory,
)
from inventiv_common.bus import EventBus
from inventiv_common.db.engine import make_engine, make_session_factory
from inventiv_common.db.models import InferenceUsage, Instance, InstanceRequestMetrics
from inventiv_common.net import free_port
from tests.api.test_gateway_metering import usage
from tests.api.test_gateway_routing import Fleet

# A process that journals the records it is given on stdin through a meter, says so,
# and waits to be killed: its records are taken, never written.
JOURNALING_PROCESS = """
import sys, time
from pathlib import Path
from inventiv_api.gateway.journal import Journal
from inventiv_api.gateway.metering import Meter, decode_usage, encode_usage
meter = Meter(None, None, journal=Journal(Path(sys.argv[1]), encode_usage, decode_usage))
for line in sys.stdin.buffer:
    meter.record(decode_usage(line.rstrip(b"\\n")))
print("taken", flush=True)
time.sleep(600)
"""


def killed_after_journaling(directory: Path, records: list[Usage]) -> None:
    """A real process journals `records`, then dies by SIGKILL (no cleanup of any kind)."""
    child = subprocess.Popen(
        [sys.executable, "-c", JOURNALING_PROCESS, str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert child.stdin and child.stdout
    child.stdin.write(b"".join(encode_usage(r) + b"\n" for r in records))
    child.stdin.close()
    assert child.stdout.readline() == b"taken\n"
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=10) == -signal.SIGKILL


def new_journal(directory: Path, **options: int) -> Journal[Usage]:
    return Journal(directory, encode_usage, decode_usage, **options)


def journal_lines(directory: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in directory.glob("*.seg"))


class Books:
    """One instance's usage rows and running totals."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.org = self.instance = self.model = uuid.uuid4()

    async def open(self) -> Books:
        self.org = await self.fleet.organization()
        self.instance = await self.fleet.instance(self.org)
        async with self.fleet.sessions() as session:
            model = await session.scalar(
                select(Instance.model_id).where(Instance.id == self.instance)
            )
        assert model is not None
        self.model = model
        return self

    def usages(self, count: int) -> list[Usage]:
        return [usage(self.org, self.instance, self.model) for _ in range(count)]

    async def rows(self) -> set[str]:
        async with self.fleet.sessions() as session:
            found = await session.scalars(
                select(InferenceUsage.request_id).where(InferenceUsage.instance_id == self.instance)
            )
            return set(found)

    async def total_requests(self) -> int:
        async with self.fleet.sessions() as session:
            totals = await session.get(InstanceRequestMetrics, self.instance)
            return totals.total_requests if totals else 0


@pytest.fixture
async def books(engine: AsyncEngine) -> AsyncIterator[Books]:
    yield await Books(Fleet(engine)).open()


@pytest.fixture
async def nowhere() -> AsyncIterator[AsyncEngine]:
    """A PostgreSQL that never answers."""
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/none", pool_size=1)
    yield engine
    await engine.dispose()


async def test_what_a_killed_process_took_is_written_once_by_the_next(
    books: Books, bus: EventBus, tmp_path: Path
) -> None:
    records = books.usages(10)
    # Four were committed before the kill, their journal lines not yet forgotten.
    early = Meter(books.fleet.sessions, bus)
    for record in records[:4]:
        early.record(record)
    assert await early.flush() == 4
    killed_after_journaling(tmp_path, records)

    meter = Meter(books.fleet.sessions, bus, journal=new_journal(tmp_path))
    assert await meter.flush() == 10
    assert await books.rows() == {r.request_id for r in records}
    assert await books.total_requests() == 10  # not 14: the four were not counted again
    assert meter.status()["journal"]["adopted"] == 10
    # The dead process's files are gone; what is left is the living meter's own.
    assert journal_lines(tmp_path) == 0
    assert [p.name.split(".")[0] for p in tmp_path.iterdir()] == [meter.journal.owner] * 2  # type: ignore[union-attr]

    await meter.close()
    assert list(tmp_path.iterdir()) == []


async def test_a_living_sibling_is_left_alone_and_a_dead_one_adopted_while_running(
    books: Books, bus: EventBus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_module, "ADOPT_EVERY_S", 0.0)
    nowhere = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/none", pool_size=1)
    sibling = Meter(make_session_factory(nowhere), bus, journal=new_journal(tmp_path))
    theirs = books.usages(3)
    for record in theirs:
        sibling.record(record)
    assert await sibling.flush() == 0  # kept, journaled: its database is away

    meter = Meter(books.fleet.sessions, bus, journal=new_journal(tmp_path))
    assert await meter.flush() == 0
    dead = books.usages(2)
    killed_after_journaling(tmp_path, dead)
    assert await meter.flush() == 2  # the next pass of a running meter adopts them
    assert await books.rows() == {r.request_id for r in dead}
    assert len(sibling.pending) == 3 and journal_lines(tmp_path) == 3

    # The sibling stops with its database still away: its records wait for the next.
    await sibling.close()
    await nowhere.dispose()
    assert await meter.flush() == 3
    assert await books.rows() == {r.request_id for r in dead + theirs}
    await meter.close()
    assert list(tmp_path.iterdir()) == []


async def test_damaged_lines_are_skipped_and_the_rest_written(
    books: Books, bus: EventBus, tmp_path: Path
) -> None:
    records = books.usages(3)
    killed_after_journaling(tmp_path, records)
    (segment,) = [p for p in tmp_path.glob("*.seg") if p.stat().st_size]
    with segment.open("ab") as damaged:
        damaged.write(b'[1,"not a record"]\n')  # a whole line that is not a record
        damaged.write(encode_usage(books.usages(1)[0])[:40])  # a write cut by the kill

    meter = Meter(books.fleet.sessions, bus, journal=new_journal(tmp_path))
    assert await meter.flush() == 3
    assert await books.rows() == {r.request_id for r in records}
    assert meter.status()["journal"]["unreadable"] == 1
    await meter.close()


async def test_the_journal_is_bounded_like_the_meter(
    books: Books, bus: EventBus, nowhere: AsyncEngine, tmp_path: Path
) -> None:
    journal = new_journal(tmp_path, segment_records=10)
    meter = Meter(make_session_factory(nowhere), bus, journal=journal, max_pending=5)
    records = books.usages(60)
    for start in range(0, 60, 6):  # passes that fail, while records keep coming
        for record in records[start : start + 6]:
            meter.record(record)
        assert await meter.flush() == 0
        assert len(meter.pending) == 5
        assert journal_lines(tmp_path) <= 5 + 10
        assert len(list(tmp_path.glob("*.seg"))) <= 3
    assert meter.dropped == 55
    await meter.close()  # the database still away: what is kept stays on disk

    meter = Meter(books.fleet.sessions, bus, journal=new_journal(tmp_path))
    await meter.flush()
    rows = await books.rows()
    # The five the meter kept, and at most the open segment's worth of dropped ones.
    assert {r.request_id for r in records[-5:]} <= rows
    assert len(rows) <= 5 + 10
    await meter.close()
    assert list(tmp_path.iterdir()) == []


async def test_a_full_disk_keeps_records_in_memory_and_the_journal_comes_back(
    books: Books, bus: EventBus, tmp_path: Path
) -> None:
    journal = new_journal(tmp_path)
    meter = Meter(books.fleet.sessions, bus, journal=journal)
    first, second, third = books.usages(3)
    meter.record(first)
    # The open segment's descriptor now writes to /dev/full: every write gets ENOSPC.
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, journal._fd)  # type: ignore[arg-type]
    os.close(full)
    meter.record(second)
    meter.record(third)
    assert journal.failures == 2 and len(meter.pending) == 3
    assert meter.status()["journal"]["writable"] is False
    assert await meter.flush() == 3  # all written, the journal on a new segment
    assert meter.status()["journal"]["writable"] is True

    again = books.usages(1)[0]
    meter.record(again)
    assert journal.failures == 2 and journal_lines(tmp_path) == 1
    assert await meter.flush() == 1
    assert await books.rows() == {r.request_id for r in (first, second, third, again)}
    await meter.close()
    assert list(tmp_path.iterdir()) == []


async def test_a_pass_ends_under_steady_load_and_the_journal_turns_over(
    books: Books, bus: EventBus, tmp_path: Path
) -> None:
    meter = Meter(books.fleet.sessions, bus, journal=new_journal(tmp_path))
    write = meter._write
    newcomers = books.usages(3)
    arriving = iter(newcomers)

    async def write_while_requests_keep_coming(batch: list[Usage]) -> None:
        meter.record(next(arriving))  # taken while the batch is being written
        await write(batch)

    meter._write = write_while_requests_keep_coming  # type: ignore[method-assign]
    first = books.usages(2)
    for record in first:
        meter.record(record)
    files = {p.name for p in tmp_path.glob("*.seg")}
    assert await meter.flush() == 2  # what was there, not what came meanwhile
    assert list(meter.pending) == newcomers[:1]
    assert {p.name for p in tmp_path.glob("*.seg")}.isdisjoint(files)  # a new file
    assert await meter.flush() == 1 and list(meter.pending) == newcomers[1:2]
    assert await meter.flush() == 1 and list(meter.pending) == newcomers[2:]
    assert journal_lines(tmp_path) == 1  # only the last newcomer is still unwritten
    meter._write = write  # type: ignore[method-assign]
    await meter.close()
    assert await books.rows() == {r.request_id for r in first + newcomers}
    assert list(tmp_path.iterdir()) == []


async def test_records_dropped_while_a_batch_is_written_are_not_taken_for_it(
    books: Books, bus: EventBus, tmp_path: Path
) -> None:
    meter = Meter(books.fleet.sessions, bus, journal=new_journal(tmp_path), max_pending=4)
    write = meter._write
    newcomers = books.usages(5)

    async def write_while_the_bound_drops(batch: list[Usage]) -> None:
        for record in newcomers:  # five more past a bound of four: the oldest go
            meter.record(record)
        await write(batch)

    meter._write = write_while_the_bound_drops  # type: ignore[method-assign]
    written = books.usages(3)
    for record in written:
        meter.record(record)
    assert await meter.flush() == 3
    # The four newest wait, none of them taken for a written one.
    assert list(meter.pending) == newcomers[1:]
    assert meter.dropped == 4  # the three written ones (dropped meanwhile) and one newcomer
    meter._write = write  # type: ignore[method-assign]
    assert await meter.flush() == 4
    assert await books.rows() == {r.request_id for r in written + newcomers[1:]}
    await meter.close()
    assert list(tmp_path.iterdir()) == []


def test_each_database_has_its_own_journal_directory(tmp_path: Path) -> None:
    one = journal_directory(tmp_path, "postgresql://app:secret@db.internal:5432/inventiv")
    assert one == journal_directory(tmp_path, "postgresql+asyncpg://app:other@db.internal/inventiv")
    assert one.parent == tmp_path and one.name.startswith("inventiv-")
    assert one != journal_directory(tmp_path, "postgresql://app@db.internal:5432/staging")
    assert one != journal_directory(tmp_path, "postgresql://app@db.other:5432/inventiv")
    socket = journal_directory(tmp_path, "postgresql://app@/inventiv?host=/run/postgresql")
    assert socket != one and "/" not in socket.name


def test_a_journal_line_round_trips_and_refuses_what_is_not_one() -> None:
    record = replace(
        usage(uuid.uuid4(), uuid.uuid4(), uuid.uuid4()), user_id=uuid.uuid4(), model_name='a "b"\nc'
    )
    line = encode_usage(record)
    assert b"\n" not in line
    assert decode_usage(line) == record
    for bad in (b"[]", b'{"a":1}', line.replace(b"[1,", b"[2,"), line.replace(b"false", b"0")):
        with pytest.raises((ValueError, TypeError)):
            decode_usage(bad)
