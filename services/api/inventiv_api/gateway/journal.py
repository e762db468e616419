"""The meter's journal: each usage record is appended to a local file as the meter takes
it, and forgotten once its row is committed, so that an api killed at any moment (a
SIGKILL, the OOM killer, a crash) loses no record it had taken. Whatever a dead process
left is adopted by the next process to look (at its start, then every few seconds), and
written like any record; the meter's insert is keyed by request id, so a record that
was journaled and also committed before the crash is not counted twice.

Why a file and not a Redis stream: appending is one write() into the kernel, a few
microseconds on the hot path, with no network round trip and nothing new to run; and
Redis here keeps nothing on disk, so a stream would lose every record on a Redis restart,
and make Redis hold state that matters, which it is kept from doing (PostgreSQL is the
truth; Redis carries hints and rate limits). The price: a journal lives on its host, so
replicas on one host adopt each other's, but a host that never comes back takes its
unwritten records with it (at most what was pending there: about a second's worth while
PostgreSQL is up).

What is guaranteed: a record is in the kernel before `append` returns, so the death of
the process loses nothing. The file is fsynced once a pass (every second, off the event
loop), so a crash of the host itself (power, kernel) can lose the last second's records.

Layout, in one directory per database (so apis of different databases sharing a
directory never replay each other's records):
- `<owner>.lock`: held with flock by its living process; the kernel lets it go when the
  process dies, however it dies, which is how a dead owner is told from a living one.
  It is locked under a temporary name first (`.lock.tmp`, which nobody claims), then
  renamed, so that no scan can ever find it unlocked while its owner lives.
- `<owner>.<n>.seg`: the records, one line each. The open segment is closed at a pass
  and a new one begun; a closed segment is deleted once all its records are settled.
  An adopted segment is first renamed into the adopter's name: a rename is atomic, so
  two processes never adopt the same segment.

Bounds: the journal holds what the meter holds. The meter settles its oldest records in
order (written, or dropped past its bound), and the journal follows the same order, so a
closed segment goes as soon as the meter has settled its last record. While PostgreSQL
is away the open segment grows up to `segment_records` lines before another is begun,
rather than a new file a second. A write that fails (disk full) keeps the record in
memory only, as before the journal; it is counted, and a new segment is tried at the
next pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

LOCK = ".lock"
LOCKING = ".lock.tmp"  # a lock not yet held under its final name
SEGMENT = ".seg"
SEGMENT_RECORDS = 20_000
ADOPT_EVERY_S = 5.0
# A failing disk is reported at most this often.
REPORT_EVERY_S = 60.0


@dataclass
class Segment:
    number: int
    path: Path
    # Records in it that the meter has not settled yet.
    outstanding: int = 0


class Journal(Generic[T]):
    """Records as lines in append-only segment files, in the order the meter keeps them.

    `append` and `settle` run on the event loop; `maintain` and `close` are called by
    the meter under its lock, so the open segment is never closed while it is synced."""

    def __init__(
        self,
        directory: Path,
        encode: Callable[[T], bytes],
        decode: Callable[[bytes], T],
        *,
        segment_records: int = SEGMENT_RECORDS,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._encode, self._decode = encode, decode
        self.segment_records = segment_records
        self.owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._lock_fd = self._hold_lock()
        self._segments: dict[int, Segment] = {}
        # Runs of [segment number, or None if not journaled; records], in the meter's order.
        self._order: deque[list[Any]] = deque()
        self._next_number = 0
        self._active: Segment | None = None
        self._fd: int | None = None
        self._size = 0
        self._writable = False
        self._unsynced = False
        self._new_name = False
        self._closed = False
        self._next_scan = 0.0
        self._reported_at = 0.0
        self.failures = 0  # records kept in memory only
        self.adopted = 0
        self.unreadable = 0
        self._begin_segment()

    # -- the hot path ---------------------------------------------------------------
    def append(self, record: T) -> bool:
        """Journal one record, which the meter then keeps last in its order. False if it
        could not be written: the record then lives in memory only."""
        segment = self._active
        if segment is not None and self._writable and self._fd is not None:
            try:
                line = self._encode(record) + b"\n"
            except Exception:  # a bug, not the disk: this record only
                log.exception("usage record not journaled")
            else:
                try:
                    written = os.write(self._fd, line)
                except OSError as exc:
                    self._stop_writing(exc)
                else:
                    if written == len(line):
                        self._size += written
                        segment.outstanding += 1
                        self._unsynced = True
                        self._add_to_order(segment.number, 1)
                        return True
                    self._stop_writing(OSError(f"short write: {written} of {len(line)} bytes"))
        self.failures += 1
        self._add_to_order(None, 1)
        return False

    def settle(self, count: int) -> None:
        """The meter's `count` oldest records are settled (committed, or dropped by its
        bound); a closed segment whose records are all settled is deleted."""
        while count and self._order:
            run = self._order[0]
            taken = min(count, run[1])
            run[1] -= taken
            count -= taken
            if not run[1]:
                self._order.popleft()
            segment = self._segments.get(run[0]) if run[0] is not None else None
            if segment is not None:
                segment.outstanding -= taken
                if not segment.outstanding and segment is not self._active:
                    self._delete(segment)

    # -- once a pass ----------------------------------------------------------------
    async def maintain(self) -> list[T]:
        """Sync what was appended since the last pass, let the open segment go when it
        should, and adopt what dead processes left. Returns the adopted records, which
        the meter must take at once (they are already last in the journal's order)."""
        if self._fd is not None and (self._unsynced or self._new_name):
            self._unsynced = False
            try:
                await asyncio.to_thread(self._sync, self._fd, self._new_name)
                self._new_name = False
            except OSError as exc:
                self._report(exc)
        active = self._active
        if active is None or not self._writable:
            self._rotate()
        elif active.outstanding:
            # Nothing older waits (the normal case: this pass writes it all, and the file
            # goes), or a backlog has made it big enough.
            if len(self._segments) == 1 or active.outstanding >= self.segment_records:
                self._rotate()
        elif self._size and self._fd is not None:
            with contextlib.suppress(OSError):  # all of it is settled: reuse the file
                os.ftruncate(self._fd, 0)
                self._size = 0
        if time.monotonic() < self._next_scan:
            return []
        self._next_scan = time.monotonic() + ADOPT_EVERY_S
        return await self.adopt()

    async def adopt(self) -> list[T]:
        """Take over the segments of every process that is gone (its lock is free), and
        of segments no lock speaks for."""
        try:
            names = os.listdir(self.directory)
        except OSError as exc:
            self._report(exc)
            return []
        taken: list[Path] = []
        for name in names:
            if name.endswith(LOCK) and not name.startswith(f"{self.owner}."):
                taken += self._claim(name)
        for name in names:
            owner = name.split(".", 1)[0]
            if name.endswith(SEGMENT) and owner != self.owner and self._lockless(owner):
                taken += self._take(self.directory / name)
        if not taken:
            return []
        # Reading and parsing may take a while for a large backlog: off the event loop.
        read = await asyncio.to_thread(lambda: [self._read(path) for path in taken])
        records: list[T] = []
        for path, found in zip(taken, read, strict=True):
            number = int(path.name.split(".")[1])
            if not found:
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            self._segments[number] = Segment(number, path, outstanding=len(found))
            self._add_to_order(number, len(found))
            records += found
        self.adopted += len(records)
        if records:
            log.info(
                "usage records adopted from the journal",
                extra={"records": len(records), "segments": len(taken)},
            )
        return records

    def close(self) -> None:
        """At shutdown, after the final flush. What is settled goes; what is not stays,
        with a lock now free, for the next process to adopt."""
        if self._closed:
            return
        self._closed = True
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        active, self._active, self._writable = self._active, None, False
        if active is not None and not active.outstanding:
            self._delete(active)
        if not self._segments:
            (self.directory / f"{self.owner}{LOCK}").unlink(missing_ok=True)
        os.close(self._lock_fd)

    def status(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "segments": len(self._segments),
            "writable": self._writable,
            "failures": self.failures,
            "adopted": self.adopted,
            "unreadable": self.unreadable,
        }

    # -- plumbing -------------------------------------------------------------------
    def _hold_lock(self) -> int:
        locking = self.directory / f"{self.owner}{LOCKING}"
        fd = os.open(locking, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(locking, self.directory / f"{self.owner}{LOCK}")
        return fd

    def _begin_segment(self) -> None:
        path = self._segment_path()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            self._report(exc)
            return
        self._active = self._segments[int(path.name.split(".")[1])] = Segment(
            int(path.name.split(".")[1]), path
        )
        self._fd, self._size, self._writable = fd, 0, True
        self._new_name = True  # synced with the directory at the next pass

    def _sync(self, fd: int, directory_too: bool) -> None:
        """In a thread: the records, and the name of a new segment (which must survive a
        crash of the host as well)."""
        os.fsync(fd)
        if directory_too:
            directory = os.open(self.directory, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    def _rotate(self) -> None:
        old, fd = self._active, self._fd
        self._active, self._fd, self._writable = None, None, False
        if fd is not None:
            os.close(fd)
        if old is not None and not old.outstanding:
            self._delete(old)
        self._begin_segment()

    def _stop_writing(self, error: OSError) -> None:
        """A failed or short write may have left part of a line: cut it off so that no
        later line is glued to it, and write nothing more here (the next pass begins a
        new segment)."""
        self._writable = False
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
        self._report(error)

    def _claim(self, lock_name: str) -> list[Path]:
        """The segments of the owner of `lock_name`, if it is dead: renamed to ours."""
        try:
            fd = os.open(self.directory / lock_name, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            return []  # gone meanwhile: adopted by another process
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return []  # alive
            owner = lock_name.removesuffix(LOCK)
            taken: list[Path] = []
            try:
                # Listed again under its lock: what another adopter left is settled.
                for name in sorted(os.listdir(self.directory)):
                    if name.startswith(f"{owner}.") and name.endswith(SEGMENT):
                        taken += self._take(self.directory / name)
                (self.directory / lock_name).unlink(missing_ok=True)
            except OSError as exc:  # the rest at the next scan; what was moved is ours
                self._report(exc)
            return taken
        finally:
            os.close(fd)

    def _lockless(self, owner: str) -> bool:
        """No lock speaks for the segments of `owner` (an adoption cut short by a
        shutdown leaves such). Asked at the moment of taking, not from the listing: an
        owner makes its lock before any segment, and an adopter moves the segments
        before it deletes the lock, so a segment seen without its lock now is an orphan."""
        return not any((self.directory / f"{owner}{suffix}").exists() for suffix in (LOCK, LOCKING))

    def _take(self, path: Path) -> list[Path]:
        mine = self._segment_path()
        try:
            os.rename(path, mine)
        except FileNotFoundError:
            return []  # another process took it first
        except OSError as exc:
            self._report(exc)
            return []
        return [mine]

    def _read(self, path: Path) -> list[T]:
        records = []
        # Only whole lines: a last line without its newline is a write the dead process
        # never finished, so its record was never taken.
        for line in path.read_bytes().split(b"\n")[:-1]:
            try:
                records.append(self._decode(line))
            except Exception:
                self.unreadable += 1
        return records

    def _segment_path(self) -> Path:
        number, self._next_number = self._next_number, self._next_number + 1
        return self.directory / f"{self.owner}.{number:08d}{SEGMENT}"

    def _delete(self, segment: Segment) -> None:
        self._segments.pop(segment.number, None)
        with contextlib.suppress(OSError):
            segment.path.unlink()

    def _add_to_order(self, number: int | None, count: int) -> None:
        if self._order and self._order[-1][0] == number:
            self._order[-1][1] += count
        else:
            self._order.append([number, count])

    def _report(self, error: OSError) -> None:
        now = time.monotonic()
        if now - self._reported_at >= REPORT_EVERY_S:
            self._reported_at = now
            log.error(
                "the usage journal cannot be written; records are kept in memory only",
                extra={"directory": str(self.directory), "error": str(error)[:300]},
            )
