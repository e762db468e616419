"""The agent's settings, from environment variables (secrets also from NAME_FILE)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, model_validator


class ConfigError(Exception):
    pass


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _secret(name: str) -> str | None:
    path = _env(f"{name}_FILE")
    if path is not None:
        if _env(name) is not None:
            raise ConfigError(f"{name} and {name}_FILE are both set; keep only one")
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE={path} cannot be read: {exc.strerror}") from None
    return _env(name)


class WorkerConfig(BaseModel):
    control_plane_url: str | None = None
    instance_id: str = Field(min_length=1)
    worker_id: str = Field(min_length=1)
    bootstrap_secret: str | None = None
    model_id: str = Field(min_length=1)
    # Either a command the agent runs and supervises, or just the URL of an engine
    # started by something else. With a command, the URL says where it listens.
    engine_command: list[str] | None = None
    engine_url: str = "http://127.0.0.1:8000"
    engine_api_key: str | None = None
    # Run at each agent start, before the engine starts and the agent registers
    # (drivers, images, weights): the host's "installing" phase. Retried with backoff
    # until it succeeds, so it must be safe to run again.
    setup_command: list[str] | None = None
    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=1, le=65535)
    heartbeat_interval_s: float = Field(default=10.0, gt=0)
    probe_interval_s: float = Field(default=1.0, gt=0)
    state_dir: Path = Path("/opt/inventiv-worker")
    drain_timeout_s: float = Field(default=30.0, ge=0)
    restart_backoff_max_s: float = Field(default=30.0, gt=0)
    log_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    log_backups: int = Field(default=3, ge=1, le=50)

    @model_validator(mode="after")
    def _engine_url_has_no_slash(self) -> WorkerConfig:
        self.engine_url = self.engine_url.rstrip("/")
        if self.control_plane_url:
            self.control_plane_url = self.control_plane_url.rstrip("/")
        return self

    @classmethod
    def from_env(cls) -> WorkerConfig:
        instance_id = _env("INSTANCE_ID")
        command = _env("ENGINE_COMMAND")
        setup = _env("SETUP_COMMAND")
        values = {
            "control_plane_url": _env("CONTROL_PLANE_URL"),
            "instance_id": instance_id,
            "worker_id": _env("WORKER_ID", instance_id),
            "bootstrap_secret": _secret("WORKER_BOOTSTRAP_SECRET"),
            "model_id": _env("MODEL_ID"),
            "engine_command": shlex.split(command) if command else None,
            "engine_url": _env("ENGINE_URL", "http://127.0.0.1:8000"),
            "engine_api_key": _secret("ENGINE_API_KEY"),
            "setup_command": shlex.split(setup) if setup else None,
            "host": _env("WORKER_HOST", "0.0.0.0"),
            "port": _env("WORKER_PORT", "8080"),
            "heartbeat_interval_s": _env("HEARTBEAT_INTERVAL_S", "10"),
            "probe_interval_s": _env("PROBE_INTERVAL_S", "1"),
            "state_dir": _env("WORKER_STATE_DIR", "/opt/inventiv-worker"),
            "drain_timeout_s": _env("DRAIN_TIMEOUT_S", "30"),
            "restart_backoff_max_s": _env("ENGINE_RESTART_BACKOFF_MAX_S", "30"),
            "log_max_bytes": _env("WORKER_LOG_MAX_BYTES", str(5 * 1024 * 1024)),
            "log_backups": _env("WORKER_LOG_BACKUPS", "3"),
        }
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]).upper()
            raise ConfigError(f"{field}: {first['msg']}") from None
