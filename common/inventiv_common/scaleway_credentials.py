"""The platform's own Scaleway credentials, as settings: the api seeds the default
organization with them (AUTO_SEED_PROVIDER_CREDENTIALS), the orchestrator deploys with
them for organizations without credentials of their own. Kept apart from the provider
so the api reads them without importing provider code."""

from __future__ import annotations

from typing import ClassVar

from pydantic import AliasChoices, Field, SecretStr

from inventiv_common.settings import CommonSettings


class ScalewayCredentialSettings(CommonSettings):
    secret_fields: ClassVar[set[str]] = CommonSettings.secret_fields | {
        "scaleway_access_key",
        "scaleway_secret_key",
    }

    scaleway_access_key: SecretStr | None = Field(
        default=None, validation_alias="SCALEWAY_ACCESS_KEY"
    )
    scaleway_secret_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "SCALEWAY_SECRET_KEY", "SCALEWAY_API_TOKEN", "SCW_SECRET_KEY"
        ),
    )
    scaleway_project_id: str | None = Field(default=None, validation_alias="SCALEWAY_PROJECT_ID")

    def platform_scaleway_credentials(self) -> dict[str, str] | None:
        """The platform's own credentials, when all three are set."""
        access = self.scaleway_access_key.get_secret_value() if self.scaleway_access_key else ""
        secret = self.scaleway_secret_key.get_secret_value() if self.scaleway_secret_key else ""
        if not (access and secret and self.scaleway_project_id):
            return None
        return {"access_key": access, "secret_key": secret, "project_id": self.scaleway_project_id}
