"""Settings of the api process."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr

from inventiv_common.scaleway_credentials import ScalewayCredentialSettings
from inventiv_common.settings import ConfigError, load_settings


class ApiSettings(ScalewayCredentialSettings):
    service_name: ClassVar[str] = "inventiv-api"
    secret_fields: ClassVar[set[str]] = ScalewayCredentialSettings.secret_fields | {
        "jwt_secret",
        "provider_settings_key",
        "default_admin_password",
    }
    required_secrets: ClassVar[tuple[str, ...]] = ("jwt_secret", "provider_settings_key")

    jwt_secret: SecretStr | None = Field(default=None, validation_alias="JWT_SECRET")
    provider_settings_key: SecretStr | None = Field(
        default=None, validation_alias="PROVIDER_SETTINGS_KEY"
    )
    port: int = Field(default=8003, ge=1, le=65535, validation_alias="API_PORT")
    migrate_on_boot: bool = Field(default=True, validation_alias="MIGRATE_ON_BOOT")
    auto_seed_catalog: bool = Field(default=False, validation_alias="AUTO_SEED_CATALOG")
    orchestrator_url: str = Field(
        default="http://127.0.0.1:8001", validation_alias="ORCHESTRATOR_URL"
    )
    default_admin_username: str = Field(default="admin", validation_alias="DEFAULT_ADMIN_USERNAME")
    default_admin_email: str = Field(
        default="admin@inventiv.local", validation_alias="DEFAULT_ADMIN_EMAIL"
    )
    default_admin_password: SecretStr | None = Field(
        default=None, validation_alias="DEFAULT_ADMIN_PASSWORD"
    )
    default_organization_name: str = Field(
        default="Inventiv IT", validation_alias="DEFAULT_ORGANIZATION_NAME"
    )
    jwt_ttl_seconds: int = Field(default=12 * 3600, ge=60, validation_alias="JWT_TTL_SECONDS")
    cookie_secure: bool = Field(default=False, validation_alias="COOKIE_SECURE")
    session_cookie_name: str = Field(
        default="inventiv_session", validation_alias="SESSION_COOKIE_NAME"
    )
    # Origins (scheme://host[:port]) allowed to send cookie-authenticated writes, comma
    # separated; the api's own origin is always allowed.
    allowed_origins: str = Field(default="", validation_alias="ALLOWED_ORIGINS")
    login_attempts_per_ip_per_minute: int = Field(
        default=20, ge=1, validation_alias="LOGIN_RATE_LIMIT_PER_IP"
    )
    login_failures_per_account_per_15min: int = Field(
        default=10, ge=1, validation_alias="LOGIN_RATE_LIMIT_PER_ACCOUNT"
    )
    # Request bodies above this are refused with 413 before being read in full.
    max_body_bytes: int = Field(default=1_048_576, ge=1024, validation_alias="MAX_BODY_BYTES")
    # Seeds the default organization's Scaleway credentials at boot when it has none.
    auto_seed_provider_credentials: bool = Field(
        default=False, validation_alias="AUTO_SEED_PROVIDER_CREDENTIALS"
    )
    invitation_ttl_hours: int = Field(default=168, ge=1, validation_alias="INVITATION_TTL_HOURS")
    # Where the gateway's meter journals usage records until they are in PostgreSQL
    # (one subdirectory per database); default INVENTIV_HOME/meter-journal.
    inventiv_home: str = Field(default=".inventiv", validation_alias="INVENTIV_HOME")
    # The worker agent's wheel served to VMs (a .whl, or a folder holding one); default
    # INVENTIV_HOME/agent, where `inventiv dev` builds it.
    agent_package: str | None = Field(default=None, validation_alias="AGENT_PACKAGE")
    meter_journal_dir: str | None = Field(default=None, validation_alias="METER_JOURNAL_DIR")

    @property
    def agent_package_path(self) -> str:
        return self.agent_package or str(Path(self.inventiv_home) / "agent")

    @property
    def meter_journal_path(self) -> Path:
        return Path(self.meter_journal_dir or Path(self.inventiv_home) / "meter-journal").resolve()

    def check_ready_to_start(self) -> None:
        super().check_ready_to_start()
        # Set on purpose, it must be usable: said in one line before anything starts.
        if self.meter_journal_dir:
            try:
                self.meter_journal_path.mkdir(parents=True, exist_ok=True)
                usable = os.access(self.meter_journal_path, os.W_OK | os.X_OK)
            except OSError as exc:
                raise ConfigError(f"METER_JOURNAL_DIR cannot be used: {exc}") from None
            if not usable:
                raise ConfigError(f"METER_JOURNAL_DIR is not writable: {self.meter_journal_path}")

    @property
    def allowed_origin_set(self) -> frozenset[str]:
        return frozenset(
            o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()
        )


@lru_cache
def get_settings() -> ApiSettings:
    return load_settings(ApiSettings)
