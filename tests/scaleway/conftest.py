"""The fake Scaleway API served on loopback for each test, and the real SDK pointed at it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from scaleway import Client
from scaleway.block.v1alpha1 import BlockV1Alpha1API
from scaleway.instance.v1 import Server
from scaleway.instance.v1.custom_api import InstanceUtilsV1API
from scaleway.marketplace.v2 import MarketplaceV2API

from inventiv_common import agent_package
from tests.lifecycle.conftest import Platform, running_platform
from tests.support.fake_scaleway import (
    DEFAULT_ACCOUNT,
    Account,
    FakeScalewayCloud,
    FakeScalewayServer,
)
from tests.support.scaleway_platform import Cloud

GPU_ZONE = "fr-par-2"


def sdk_client(api: FakeScalewayServer, account: Account = DEFAULT_ACCOUNT) -> Client:
    return Client(
        access_key=account.access_key,
        secret_key=account.secret_key,
        default_project_id=account.default_project_id,
        default_zone=GPU_ZONE,
        api_url=api.url,
        api_allow_insecure=True,
    )


@pytest.fixture
def serve() -> Iterator[Callable[[FakeScalewayCloud], FakeScalewayServer]]:
    """Serves a cloud the test built (hooks, timings); stopped after the test."""
    started: list[FakeScalewayServer] = []

    def start(cloud: FakeScalewayCloud) -> FakeScalewayServer:
        started.append(FakeScalewayServer(cloud).start())
        return started[-1]

    yield start
    for api in started:
        api.stop()


@pytest.fixture
def cloud() -> FakeScalewayCloud:
    return FakeScalewayCloud(transition_s=0.05)


@pytest.fixture
def api(cloud: FakeScalewayCloud, serve: Callable[..., FakeScalewayServer]) -> FakeScalewayServer:
    return serve(cloud)


@pytest.fixture
def client(api: FakeScalewayServer) -> Client:
    return sdk_client(api)


@pytest.fixture
def instance(client: Client) -> InstanceUtilsV1API:
    return InstanceUtilsV1API(client)


@pytest.fixture
def block(client: Client) -> BlockV1Alpha1API:
    return BlockV1Alpha1API(client)


@pytest.fixture
def marketplace(client: Client) -> MarketplaceV2API:
    return MarketplaceV2API(client)


def gpu_image_id(marketplace: MarketplaceV2API, zone: str = GPU_ZONE) -> str:
    images = marketplace.list_local_images(zone=zone, image_label="ubuntu_jammy_gpu_os_12")
    assert len(images.local_images) == 1
    image_id: str = images.local_images[0].id
    return image_id


def wait_for_state(
    instance: InstanceUtilsV1API, server_id: str, state: str, zone: str = GPU_ZONE
) -> Server:
    """Polls as a client must: the SDK's own wait also returns on `stopped`."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        server = instance.get_server(server_id=server_id, zone=zone).server
        if server.state == state:
            return server
        time.sleep(0.02)
    raise AssertionError(f"server {server_id} never reached {state}")


@pytest.fixture(scope="session")
def agent_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The worker agent's wheel, built from this tree as `make dev` builds it."""
    return agent_package.build(tmp_path_factory.mktemp("agent"))


@pytest.fixture
def scaleway_cloud(tmp_path: Path) -> Iterator[Cloud]:
    """The fake Scaleway API with VMs behind it (see tests/support/scaleway_platform.py)."""
    made = Cloud(tmp_path)
    yield made
    made.close()


@pytest.fixture
def scaleway_platform(
    scaleway_cloud: Cloud, agent_wheel: Path, empty_database_url: str, tmp_path: Path
) -> Iterator[Platform]:
    """The real api and orchestrator, deploying on `scaleway_cloud`."""
    settings = scaleway_cloud.settings(agent_wheel)
    with running_platform(empty_database_url, tmp_path, None, settings) as platform:
        yield platform
