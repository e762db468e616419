"""The user data of a provider that boots real VMs (Scaleway): what the orchestrator
knows of an instance, turned into the VM's cloud-init (common/providers/cloud_init.py).

Rendered at each create attempt, so a wheel rebuilt meanwhile or a changed setting is
what the VM gets. A setting missing for a real VM (no agent package to serve) fails the
attempt with that reason, not a VM that can never register.
"""

from __future__ import annotations

from inventiv_common import agent_package
from inventiv_common.agent_checksum import expected_agent_checksum
from inventiv_common.providers.base import ProviderError, ServerSpec
from inventiv_common.providers.cloud_init import (
    AgentDelivery,
    EngineLaunch,
    VmBoot,
    engine_args_to_flags,
    render_user_data,
)
from inventiv_common.providers.scaleway.provider import UserData
from inventiv_orchestrator.settings import OrchestratorSettings


def user_data_for(settings: OrchestratorSettings) -> UserData:
    def render(spec: ServerSpec) -> bytes:
        package = agent_package.find(settings.agent_package_path)
        checksum = settings.expected_agent_checksum or expected_agent_checksum()
        if package is None or checksum is None:
            raise ProviderError(
                "the worker agent's package is not available to VMs: build it (make dev "
                "does) or set AGENT_PACKAGE to the wheel the api serves",
                retryable=False,
                code="agent_package_missing",
            )
        try:
            boot = VmBoot(
                instance_id=spec.name,
                control_plane_url=spec.control_plane_url,
                bootstrap_secret=spec.bootstrap_secret,
                engine=EngineLaunch(
                    model=spec.model,
                    served_name=spec.model,
                    gpu_count=max(1, spec.gpu_count),
                    max_model_len=spec.max_model_len,
                    engine_key=spec.engine_key,
                    hf_token=spec.hf_token,
                    extra_args=engine_args_to_flags(spec.engine_args),
                    image=settings.vllm_image,
                    port=settings.vm_engine_port,
                ),
                agent=AgentDelivery(
                    package_url=package.url(spec.control_plane_url),
                    package_sha256=package.sha256,
                    code_checksum=checksum,
                ),
                data_device=settings.vm_data_device,
                agent_port=settings.vm_agent_port,
                heartbeat_interval_s=spec.heartbeat_interval_s,
            )
        except ValueError as exc:  # a model's settings the VM cannot be given
            raise ProviderError(
                f"the VM's boot cannot be written: {exc}", retryable=False, code="invalid_argument"
            ) from None
        return render_user_data(boot).encode()

    return render
