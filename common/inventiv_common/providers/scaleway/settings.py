"""The Scaleway settings the orchestrator (which deploys, and checks credentials as the
api saves them) and the `inventiv scaleway` commands read, and the provider
configuration made of them.

The credentials (scaleway_credentials.py) are the platform's own: an organization that
saved its own (`PUT /provider_settings/scaleway`) deploys with those instead.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from inventiv_common.providers.scaleway.provider import DEFAULT_API_URL, ScalewayConfig
from inventiv_common.scaleway_credentials import ScalewayCredentialSettings


class ScalewaySettings(ScalewayCredentialSettings):
    # Scaleway's API; a local address (the fake Scaleway of tests and `make dev`) too.
    scaleway_api_url: str = Field(default=DEFAULT_API_URL, validation_alias="SCALEWAY_API_URL")
    # The zones deployments may use and the watchdog looks in, comma-separated.
    scaleway_zones: str = Field(
        default="fr-par-2",
        pattern=r"^[a-z]{2}-[a-z]{3}-\d(,[a-z]{2}-[a-z]{3}-\d)*$",
        validation_alias="SCALEWAY_ZONES",
    )
    # The marketplace label of the servers' image (a GPU OS: NVIDIA driver and Docker).
    scaleway_image_label: str = Field(
        default="ubuntu_jammy_gpu_os_12", validation_alias="SCALEWAY_IMAGE_LABEL"
    )
    scaleway_boot_volume_gb: int = Field(
        default=125, ge=10, le=10_000, validation_alias="SCALEWAY_BOOT_VOLUME_GB"
    )
    # The model cache's volume when the model names no size of its own.
    scaleway_data_volume_gb: int = Field(
        default=200, ge=10, le=10_000, validation_alias="SCALEWAY_DATA_VOLUME_GB"
    )
    # The ports a VM's boot opens: the worker agent's, and the engine's (its key guards it).
    vm_agent_port: int = Field(default=8080, ge=1, le=65535, validation_alias="VM_AGENT_PORT")
    vm_engine_port: int = Field(default=8000, ge=1, le=65535, validation_alias="VM_ENGINE_PORT")
    scaleway_max_in_flight: int = Field(
        default=8, ge=1, le=64, validation_alias="SCALEWAY_MAX_IN_FLIGHT"
    )
    scaleway_call_timeout_s: float = Field(
        default=60.0, gt=0, le=600, validation_alias="SCALEWAY_CALL_TIMEOUT_S"
    )

    def scaleway_config(self, credentials: Mapping[str, str]) -> ScalewayConfig:
        """The provider's configuration for these credentials (an organization's, or
        the platform's); a `default_zone` among them is tried first."""
        zones = tuple(self.scaleway_zones.split(","))
        first = credentials.get("default_zone")
        if first and first in zones:
            zones = (first, *(z for z in zones if z != first))
        return ScalewayConfig(
            access_key=credentials["access_key"],
            secret_key=credentials["secret_key"],
            project_id=credentials["project_id"],
            zones=zones,
            api_url=self.scaleway_api_url.rstrip("/"),
            image_label=self.scaleway_image_label,
            boot_volume_gb=self.scaleway_boot_volume_gb,
            data_volume_gb=self.scaleway_data_volume_gb,
            agent_port=self.vm_agent_port,
            engine_port=self.vm_engine_port,
            max_in_flight=self.scaleway_max_in_flight,
            call_timeout_s=self.scaleway_call_timeout_s,
        )
