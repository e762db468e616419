"""Settings shared by every control-plane service.

Each service subclasses `CommonSettings` and exposes its own cached `get_settings()`.
Every secret can also be given as a file through `NAME_FILE` (Docker and Kubernetes
secrets), and outside dev mode a missing or default secret stops the process with a
one-line message naming it.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

# The value a dev process falls back to when no secret is configured. Outside dev
# mode it is refused, as are the placeholders people copy from examples.
DEV_SECRET_FALLBACK = "dev-insecure-secret-do-not-use-in-production"  # noqa: S105
_PLACEHOLDER_SECRETS = {
    "",
    DEV_SECRET_FALLBACK,
    "change-me",
    "changeme",
    "secret",
    "password",
    "dev",
}
MIN_SECRET_LENGTH = 32


class ConfigError(Exception):
    """A configuration problem, reported to the operator as one line."""


class Environment(StrEnum):
    dev = "dev"
    test = "test"
    staging = "staging"
    prod = "prod"


def _env_name(field_name: str, field: FieldInfo) -> str:
    alias = field.validation_alias
    return (alias if isinstance(alias, str) else field_name).upper()


class SecretFileSource(PydanticBaseSettingsSource):
    """Reads `NAME_FILE` for every secret field; refuses NAME and NAME_FILE together."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ does the work

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        secret_fields: set[str] = getattr(self.settings_cls, "secret_fields", set())
        for name, field in self.settings_cls.model_fields.items():
            if name not in secret_fields:
                continue
            env_name = _env_name(name, field)
            path = os.environ.get(f"{env_name}_FILE")
            if not path:
                continue
            if os.environ.get(env_name):  # set and non-empty
                raise ConfigError(f"{env_name} and {env_name}_FILE are both set; keep only one")
            try:
                values[name] = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"{env_name}_FILE={path} cannot be read: {exc.strerror}"
                ) from None
        return values


class CommonSettings(BaseSettings):
    # An empty variable counts as unset, as env files often leave them blank.
    model_config = SettingsConfigDict(
        extra="ignore", case_sensitive=False, populate_by_name=True, env_ignore_empty=True
    )

    # Names of the fields that are secrets: readable from NAME_FILE, never logged.
    # URLs count: they may carry passwords. Services add their own secrets.
    secret_fields: ClassVar[set[str]] = {"database_url", "redis_url"}
    # Secrets this service cannot run without outside dev mode.
    required_secrets: ClassVar[tuple[str, ...]] = ()
    service_name: ClassVar[str] = "inventiv"
    default_port: ClassVar[int] = 0

    env: Environment = Field(default=Environment.dev, validation_alias="INVENTIV_ENV")
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    # Lets several deployments (or parallel test runs) share one Redis safely.
    redis_channel_prefix: str = Field(default="", validation_alias="REDIS_CHANNEL_PREFIX")
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    log_format: str = Field(default="json", pattern="^(json|text)$", validation_alias="LOG_FORMAT")
    bind_host: str = Field(default="127.0.0.1", validation_alias="BIND_HOST")
    db_pool_size: int = Field(default=20, ge=1, le=200, validation_alias="DB_POOL_SIZE")
    shutdown_timeout_s: float = Field(default=10.0, ge=0, validation_alias="SHUTDOWN_TIMEOUT_S")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, SecretFileSource(settings_cls), dotenv_settings)

    @property
    def is_dev(self) -> bool:
        return self.env in (Environment.dev, Environment.test)

    def secret(self, name: str) -> str:
        """The secret's value; in dev mode an unset secret falls back to a dev value."""
        value: SecretStr | None = getattr(self, name)
        if value is None or not value.get_secret_value():
            if self.is_dev:
                return DEV_SECRET_FALLBACK
            raise ConfigError(f"{name.upper()} is not set")
        return value.get_secret_value()

    def check_ready_to_start(self) -> None:
        """Refuse to start on settings that are unsafe or incomplete; one line per problem."""
        if not self.database_url:
            raise ConfigError(
                "DATABASE_URL is not set (use `inventiv dev` for an embedded database)"
            )
        if not self.redis_url:
            raise ConfigError("REDIS_URL is not set (use `inventiv dev` for an embedded Redis)")
        if self.is_dev:
            return
        for name in self.required_secrets:
            env_name = _env_name(name, type(self).model_fields[name])
            value: SecretStr | None = getattr(self, name)
            raw = value.get_secret_value() if value is not None else ""
            if raw.strip().lower() in _PLACEHOLDER_SECRETS:
                raise ConfigError(
                    f"refusing to start in {self.env.value} mode: {env_name} is missing or a "
                    f"default value; set {env_name} or {env_name}_FILE"
                )
            if len(raw) < MIN_SECRET_LENGTH:
                raise ConfigError(
                    f"refusing to start in {self.env.value} mode: {env_name} is shorter than "
                    f"{MIN_SECRET_LENGTH} characters"
                )


S = TypeVar("S", bound=CommonSettings)


def load_settings(cls: type[S]) -> S:
    """Build settings, turning validation errors into one readable ConfigError."""
    try:
        return cls()
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        raise ConfigError(f"{loc.upper()}: {first.get('msg')}") from None


def async_database_url(url: str) -> str:
    """The SQLAlchemy URL for the asyncpg driver, from any usual PostgreSQL URL form."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ConfigError("DATABASE_URL must start with postgresql:// (or postgres://)")
