"""`DockerRuntime`: a mock server is a container of the worker image (agent + mock
engine), on machines with a Docker engine. Same interface as the process runtime.

The container publishes the agent's and the engine's ports on loopback, reaches the
control plane through `host.docker.internal` when it was given a loopback address, and
carries labels naming its server, so strays from an interrupted start can be found.
"""

from __future__ import annotations

import shlex
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import docker
from docker.errors import APIError, DockerException, NotFound

from inventiv_common.providers.base import ProviderError, ServerSpec
from inventiv_common.providers.mock_timing import INSTANT, MockTimings

AGENT_PORT = 8080
ENGINE_PORT = 8000
SERVER_LABEL = "io.inventiv.server-id"
STOP_GRACE_S = 20


def _reachable_from_container(url: str) -> str:
    """A control-plane URL on the host's loopback, as a container sees it."""
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return url
    netloc = "host.docker.internal" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class DockerRuntime:
    name = "docker"
    leaves_processes = True

    def __init__(
        self,
        image: str,
        *,
        base_url: str | None = None,
        timings: MockTimings = INSTANT,
        engine_flags: str = "",
    ) -> None:
        self.image = image
        self.base_url = base_url
        self.timings = timings
        self.engine_flags = engine_flags
        self._client: docker.DockerClient | None = None

    @property
    def client(self) -> docker.DockerClient:
        # Connected on first use: an orchestrator without an engine still starts, and
        # says what is wrong when a mock server is asked for.
        if self._client is None:
            try:
                self._client = (
                    docker.DockerClient(base_url=self.base_url)
                    if self.base_url
                    else docker.from_env()
                )
            except DockerException as exc:
                raise ProviderError(f"docker runtime: no engine reachable ({exc})") from exc
        return self._client

    def start(self, server_id: str, spec: ServerSpec) -> dict[str, Any]:
        engine = [
            "python",
            "-m",
            "inventiv_worker.mock_engine",
            "--host",
            "0.0.0.0",
            "--port",
            str(ENGINE_PORT),
            "--model",
            spec.model,
            "--startup-delay",
            str(self.timings.engine_startup_s),
            *shlex.split(self.engine_flags),
        ]
        environment = {
            "INSTANCE_ID": spec.name,
            "WORKER_ID": server_id,
            "MODEL_ID": spec.model,
            "CONTROL_PLANE_URL": _reachable_from_container(spec.control_plane_url),
            "WORKER_BOOTSTRAP_SECRET": spec.bootstrap_secret,
            "ENGINE_API_KEY": spec.engine_key,
            "ENGINE_COMMAND": shlex.join(engine),
            "ENGINE_URL": f"http://127.0.0.1:{ENGINE_PORT}",
            "WORKER_HOST": "0.0.0.0",
            "WORKER_PORT": str(AGENT_PORT),
            "HEARTBEAT_INTERVAL_S": str(spec.heartbeat_interval_s),
            **self.timings.setup_env("python"),
        }
        try:
            container = self.client.containers.run(
                self.image,
                command=self.timings.agent_command("python"),
                name=f"inventiv-{server_id}",
                detach=True,
                environment=environment,
                labels={SERVER_LABEL: server_id, "io.inventiv.instance-id": spec.name},
                ports={
                    f"{AGENT_PORT}/tcp": ("127.0.0.1", None),
                    f"{ENGINE_PORT}/tcp": ("127.0.0.1", None),
                },
                extra_hosts={"host.docker.internal": "host-gateway"},
            )
            container.reload()  # the engine picks the host ports at start
            ports = container.attrs["NetworkSettings"]["Ports"]
            health_port = int(ports[f"{AGENT_PORT}/tcp"][0]["HostPort"])
            engine_port = int(ports[f"{ENGINE_PORT}/tcp"][0]["HostPort"])
        except (APIError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise ProviderError(f"docker runtime: could not start {server_id}: {exc}") from exc
        return {
            "runtime": self.name,
            "server_id": server_id,
            "container_id": container.id,
            "health_port": health_port,
            "engine_port": engine_port,
        }

    def alive(self, details: dict[str, Any]) -> bool:
        container_id = details.get("container_id")
        if not isinstance(container_id, str):
            return False
        try:
            return self.client.containers.get(container_id).status == "running"
        except NotFound:
            return False
        except (APIError, ProviderError):
            return True  # the engine is unreachable, not the server gone: do not close it

    def stop(self, details: dict[str, Any]) -> None:
        container_id = details.get("container_id")
        if isinstance(container_id, str):
            self._remove(container_id)

    def stop_strays(self, server_id: str) -> None:
        strays = self.client.containers.list(
            all=True, filters={"label": f"{SERVER_LABEL}={server_id}"}
        )
        for container in strays:
            self._remove(container.id)

    def discard(self, details: dict[str, Any]) -> None:
        return None  # the container's files, its token among them, went with it

    def _remove(self, container_id: str) -> None:
        try:
            container = self.client.containers.get(container_id)
            if container.status == "running":
                container.stop(timeout=STOP_GRACE_S)  # the agent drains, then stops its engine
            container.remove(force=True)
        except NotFound:
            return  # already gone: success
        except APIError as exc:
            raise ProviderError(f"docker runtime: could not remove {container_id}: {exc}") from exc
