"""Settings of the orchestrator process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr

from inventiv_common.providers.cloud_init import DEFAULT_VLLM_IMAGE
from inventiv_common.providers.scaleway.settings import ScalewaySettings
from inventiv_common.settings import load_settings


class OrchestratorSettings(ScalewaySettings):
    service_name: ClassVar[str] = "inventiv-orchestrator"
    # It decrypts provider credentials to call the providers.
    secret_fields: ClassVar[set[str]] = ScalewaySettings.secret_fields | {
        "provider_settings_key",
        "hf_token",
    }
    required_secrets: ClassVar[tuple[str, ...]] = ("provider_settings_key",)

    provider_settings_key: SecretStr | None = Field(
        default=None, validation_alias="PROVIDER_SETTINGS_KEY"
    )
    # Given to the VMs of models gated on Hugging Face (models.requires_hf_token) only.
    hf_token: SecretStr | None = Field(default=None, validation_alias="HF_TOKEN")

    port: int = Field(default=8001, ge=1, le=65535, validation_alias="ORCHESTRATOR_PORT")
    migrate_on_boot: bool = Field(default=True, validation_alias="MIGRATE_ON_BOOT")
    # How often each lifecycle loop sweeps PostgreSQL for work a lost message left behind.
    loop_interval_s: float = Field(default=2.0, gt=0, validation_alias="LOOP_INTERVAL_S")
    # Instances that look fine (fresh heartbeats, worker ready) are still checked
    # against the provider and probed this often; trouble is looked at every pass.
    health_sweep_interval_s: float = Field(
        default=30.0, gt=0, validation_alias="HEALTH_SWEEP_INTERVAL_S"
    )
    # Servers and volumes at the providers are reconciled with the database this often.
    watchdog_interval_s: float = Field(default=30.0, gt=0, validation_alias="WATCHDOG_INTERVAL_S")
    # Instance type prices and zone offers are refreshed from each provider this often.
    catalog_sync_interval_s: float = Field(
        default=3600.0, gt=0, validation_alias="CATALOG_SYNC_INTERVAL_S"
    )
    provision_max_attempts: int = Field(default=5, ge=1, validation_alias="PROVISION_MAX_ATTEMPTS")
    provision_retry_base_s: float = Field(
        default=2.0, gt=0, validation_alias="PROVISION_RETRY_BASE_S"
    )
    # An instance not ready this long after its request is failed.
    boot_timeout_s: float = Field(default=1800.0, gt=0, validation_alias="BOOT_TIMEOUT_S")
    # Workers reach the control plane here (the api proxies /internal/worker/*).
    worker_control_plane_url: str = Field(
        default="http://127.0.0.1:8003", validation_alias="WORKER_CONTROL_PLANE_URL"
    )
    worker_heartbeat_interval_s: float = Field(
        default=10.0, gt=0, validation_alias="WORKER_HEARTBEAT_INTERVAL_S"
    )
    # Missed heartbeats (in intervals) before a ready instance is unhealthy.
    worker_heartbeat_misses: int = Field(
        default=3, ge=1, validation_alias="WORKER_HEARTBEAT_MISSES"
    )
    # Refuse registration of an agent whose checksum is not the expected one.
    refuse_agent_mismatch: bool = Field(default=False, validation_alias="REFUSE_AGENT_MISMATCH")
    expected_agent_checksum: str | None = Field(
        default=None, validation_alias="EXPECTED_AGENT_CHECKSUM"
    )
    heartbeat_flush_interval_s: float = Field(
        default=1.0, gt=0, validation_alias="HEARTBEAT_FLUSH_INTERVAL_S"
    )
    # Mock provider: `process` runs an agent and a mock engine per instance as local
    # processes; `docker` runs them as a container of MOCK_DOCKER_IMAGE (engine found
    # through DOCKER_HOST, as the docker CLI does); `simulated` runs nothing (benchmarks).
    mock_runtime: str = Field(
        default="process",
        pattern="^(process|docker|simulated)$",
        validation_alias="MOCK_RUNTIME",
    )
    mock_docker_image: str = Field(
        default="inventiv-worker:latest", validation_alias="MOCK_DOCKER_IMAGE"
    )
    # How long a mock server boots (agent not answering) and installs (agent answering,
    # setup not done): with the engine's startup delay, every state can be watched.
    mock_boot_delay_s: float = Field(default=0.0, ge=0, validation_alias="MOCK_BOOT_DELAY_S")
    mock_install_delay_s: float = Field(default=0.0, ge=0, validation_alias="MOCK_INSTALL_DELAY_S")
    mock_engine_startup_delay_s: float = Field(
        default=1.0, ge=0, validation_alias="MOCK_ENGINE_STARTUP_DELAY_S"
    )
    # Extra mock engine options, as on its command line: e.g. "--token-delay-ms 50
    # --ttft-ms 200" makes streams slow enough to watch (or to walk away from).
    mock_engine_flags: str = Field(default="", validation_alias="MOCK_ENGINE_FLAGS")
    mock_fail_creates: int = Field(default=0, ge=0, validation_alias="MOCK_FAIL_CREATES")
    inventiv_home: str = Field(default=".inventiv", validation_alias="INVENTIV_HOME")
    # Real VMs (Scaleway): the worker agent's wheel the api serves them (a .whl, or a
    # folder holding one; default INVENTIV_HOME/agent, where `inventiv dev` builds it),
    # the engine image, the model cache's device (the ports: ScalewaySettings).
    agent_package: str | None = Field(default=None, validation_alias="AGENT_PACKAGE")
    vllm_image: str = Field(default=DEFAULT_VLLM_IMAGE, validation_alias="VLLM_IMAGE")
    vm_data_device: str = Field(
        default="/dev/sdb", pattern=r"^/dev/[a-z0-9/]+$", validation_alias="VM_DATA_DEVICE"
    )

    @property
    def agent_package_path(self) -> str:
        return self.agent_package or str(Path(self.inventiv_home) / "agent")


@lru_cache
def get_settings() -> OrchestratorSettings:
    return load_settings(OrchestratorSettings)
