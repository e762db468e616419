"""Settings of the orchestrator process."""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

from pydantic import Field, SecretStr

from inventiv_common.settings import CommonSettings, load_settings


class OrchestratorSettings(CommonSettings):
    service_name: ClassVar[str] = "inventiv-orchestrator"
    # It decrypts provider credentials to call the providers.
    secret_fields: ClassVar[set[str]] = CommonSettings.secret_fields | {"provider_settings_key"}
    required_secrets: ClassVar[tuple[str, ...]] = ("provider_settings_key",)

    provider_settings_key: SecretStr | None = Field(
        default=None, validation_alias="PROVIDER_SETTINGS_KEY"
    )

    port: int = Field(default=8001, ge=1, le=65535, validation_alias="ORCHESTRATOR_PORT")
    migrate_on_boot: bool = Field(default=True, validation_alias="MIGRATE_ON_BOOT")


@lru_cache
def get_settings() -> OrchestratorSettings:
    return load_settings(OrchestratorSettings)
