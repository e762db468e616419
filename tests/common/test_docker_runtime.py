"""The Mock provider's docker runtime, through the real `docker` SDK, against a stand-in
for the Docker Engine HTTP API on loopback (no engine runs here). The stand-in keeps
containers in memory; what is checked is what our runtime asks of an engine and what
it makes of the answers."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from inventiv_common.providers.base import ProviderError, ServerSpec
from inventiv_common.providers.docker_runtime import SERVER_LABEL, DockerRuntime
from inventiv_common.providers.mock_timing import BOOT_SHIM, MockTimings
from tests.support.instances import mock_spec


class FakeEngine:
    """The part of the Docker Engine API the SDK uses for run/get/list/stop/remove."""

    def __init__(self) -> None:
        self.containers: dict[str, dict[str, Any]] = {}
        self.next_port = 40000
        self.lock = threading.Lock()

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any):
        path = re.sub(r"^/v[0-9.]+", "", path)
        if path == "/version":
            return 200, {"ApiVersion": "1.44", "Version": "stand-in"}
        if method == "POST" and path == "/containers/create":
            container_id = uuid.uuid4().hex * 2
            bindings = body.get("HostConfig", {}).get("PortBindings", {})
            self.containers[container_id] = {
                "Id": container_id,
                "Name": "/" + query["name"][0],
                "Config": {
                    "Image": body["Image"],
                    "Cmd": body.get("Cmd"),
                    "Env": body.get("Env", []),
                    "Labels": body.get("Labels", {}),
                },
                "HostConfig": body.get("HostConfig", {}),
                "State": {"Status": "created"},
                "NetworkSettings": {"Ports": {port: None for port in bindings}},
            }
            return 201, {"Id": container_id, "Warnings": []}
        if method == "GET" and path == "/containers/json":
            wanted = json.loads(query.get("filters", ["{}"])[0]).get("label", [])
            found = [
                {"Id": c["Id"]}
                for c in self.containers.values()
                if all(
                    c["Config"]["Labels"].get(k) == v
                    for k, _, v in (w.partition("=") for w in wanted)
                )
            ]
            return 200, found
        match = re.fullmatch(r"/containers/(\w+)(/json|/start|/stop)?", path)
        if match is None:
            return 404, {"message": f"stand-in: no route {method} {path}"}
        container = self.containers.get(match.group(1))
        if container is None:
            return 404, {"message": "No such container"}
        action = match.group(2)
        if method == "GET" and action == "/json":
            return 200, container
        if method == "POST" and action == "/start":
            container["State"]["Status"] = "running"
            for port, binding in container["HostConfig"]["PortBindings"].items():
                with self.lock:
                    self.next_port += 1
                    host_port = str(self.next_port)
                container["NetworkSettings"]["Ports"][port] = [
                    {"HostIp": binding[0]["HostIp"], "HostPort": host_port}
                ]
            return 204, None
        if method == "POST" and action == "/stop":
            container["State"]["Status"] = "exited"
            container["stopped_with_timeout"] = query.get("t", [None])[0]
            return 204, None
        if method == "DELETE" and action is None:
            del self.containers[container["Id"]]
            return 204, None
        return 404, {"message": f"stand-in: no route {method} {path}"}


@pytest.fixture
def engine() -> Iterator[tuple[FakeEngine, str]]:
    fake = FakeEngine()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            status, payload = fake.handle(
                self.command, parts.path, parse_qs(parts.query), json.loads(raw) if raw else {}
            )
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake, f"tcp://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def spec(name: str) -> ServerSpec:
    return mock_spec(
        name,
        control_plane_url="http://127.0.0.1:8003",
        bootstrap_secret="wb_secret",
        engine_key="ek_key",
        heartbeat_interval_s=2.0,
    )


def test_start_runs_the_worker_image_with_published_ports_and_labels(engine) -> None:
    fake, url = engine
    runtime = DockerRuntime(
        "inventiv-worker:test",
        base_url=url,
        timings=MockTimings(boot_s=1.0, install_s=2.0, engine_startup_s=0.5),
    )
    details = runtime.start("mock-abc", spec("11111111-1111-1111-1111-111111111111"))

    container = fake.containers[details["container_id"]]
    assert container["Config"]["Image"] == "inventiv-worker:test"
    assert container["Config"]["Labels"][SERVER_LABEL] == "mock-abc"
    env = dict(item.split("=", 1) for item in container["Config"]["Env"])
    # A loopback control plane is reached from inside the container through the host.
    assert env["CONTROL_PLANE_URL"] == "http://host.docker.internal:8003"
    assert env["WORKER_BOOTSTRAP_SECRET"] == "wb_secret"
    assert env["ENGINE_API_KEY"] == "ek_key"
    assert "--startup-delay 0.5" in env["ENGINE_COMMAND"]
    # The boot delay runs before the agent (which then replaces it); install is its setup.
    assert container["Config"]["Cmd"] == [
        "python",
        "-c",
        BOOT_SHIM,
        "1.0",
        "python",
        "-m",
        "inventiv_worker.agent",
    ]
    assert env["SETUP_COMMAND"] == "python -c 'import time; time.sleep(2.0)'"
    assert container["HostConfig"]["ExtraHosts"] == ["host.docker.internal:host-gateway"]
    # Both ports are published on loopback only, and the runtime reports the host side.
    bindings = container["HostConfig"]["PortBindings"]
    assert {b[0]["HostIp"] for b in bindings.values()} == {"127.0.0.1"}
    published = container["NetworkSettings"]["Ports"]
    assert details["health_port"] == int(published["8080/tcp"][0]["HostPort"])
    assert details["engine_port"] == int(published["8000/tcp"][0]["HostPort"])
    assert runtime.alive(details) is True


def test_stop_removes_the_container_and_a_gone_container_is_not_alive(engine) -> None:
    fake, url = engine
    runtime = DockerRuntime("inventiv-worker:test", base_url=url)
    details = runtime.start("mock-stop", spec("22222222-2222-2222-2222-222222222222"))
    runtime.stop(details)
    assert fake.containers == {}
    assert runtime.alive(details) is False
    runtime.stop(details)  # stopping twice is not an error


def test_strays_of_an_interrupted_start_are_found_by_label(engine) -> None:
    fake, url = engine
    runtime = DockerRuntime("inventiv-worker:test", base_url=url)
    runtime.start("mock-stray", spec("33333333-3333-3333-3333-333333333333"))
    kept = runtime.start("mock-other", spec("44444444-4444-4444-4444-444444444444"))
    runtime.stop_strays("mock-stray")
    assert list(fake.containers) == [kept["container_id"]]


def test_no_engine_is_a_provider_error_not_a_crash() -> None:
    runtime = DockerRuntime("inventiv-worker:test", base_url="tcp://127.0.0.1:9")
    with pytest.raises(ProviderError, match="docker runtime"):
        runtime.start("mock-x", spec("55555555-5555-5555-5555-555555555555"))
