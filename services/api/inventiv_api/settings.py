"""Settings of the api process."""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

from pydantic import Field, SecretStr

from inventiv_common.settings import CommonSettings, load_settings


class ApiSettings(CommonSettings):
    service_name: ClassVar[str] = "inventiv-api"
    secret_fields: ClassVar[set[str]] = CommonSettings.secret_fields | {
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


@lru_cache
def get_settings() -> ApiSettings:
    return load_settings(ApiSettings)
