"""The agent's structured event log: JSON lines in the state directory, size-rotated.

`/logs` reads it back newest-last across the rotated files, so an operator can see
what happened on a worker (engine starts, crashes, registrations) without a shell.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOG_NAME = "worker-events.log"


class EventLog:
    def __init__(self, directory: Path, max_bytes: int, backups: int) -> None:
        self.path = directory / LOG_NAME
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)

    def _rotated(self, index: int) -> Path:
        return self.path.with_name(f"{LOG_NAME}.{index}")

    def _rotate(self) -> None:
        for index in range(self.backups - 1, 0, -1):
            if self._rotated(index).exists():
                os.replace(self._rotated(index), self._rotated(index + 1))
        os.replace(self.path, self._rotated(1))

    def record(self, event: str, **fields: Any) -> dict[str, Any]:
        entry = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event}
        entry.update(fields)
        line = json.dumps(entry, default=str) + "\n"
        with self._lock:
            if self.path.exists() and self.path.stat().st_size + len(line) > self.max_bytes:
                self._rotate()
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line)
        return entry

    def read(self, tail: int, since: datetime | None = None) -> list[dict[str, Any]]:
        """The last `tail` events (oldest first), optionally only those after `since`."""
        files = [self._rotated(i) for i in range(self.backups, 0, -1)] + [self.path]
        events: list[dict[str, Any]] = []
        with self._lock:
            for path in files:
                if not path.exists():
                    continue
                for line in path.read_text(encoding="utf-8").splitlines():
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a torn line from a crash is skipped, not fatal
                    if since is not None and datetime.fromisoformat(entry["ts"]) <= since:
                        continue
                    events.append(entry)
        return events[-tail:] if tail else []
