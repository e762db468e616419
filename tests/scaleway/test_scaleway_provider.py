"""The Scaleway provider against the fake Scaleway API, through the real SDK: a server
made once however often create is retried, its volumes, user data and power-on; the
lookups the lifecycle loops use; termination that leaves nothing billing; the catalog;
credentials; and Scaleway's refusals as typed causes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest

from inventiv_common.providers.base import ProviderError, ServerSpec
from inventiv_common.providers.scaleway.provider import ScalewayConfig, ScalewayProvider
from tests.support.fake_scaleway import (
    DEFAULT_ACCOUNT,
    FakeScalewayCloud,
    FakeScalewayServer,
)

ZONE = "fr-par-2"
GPU_TYPE = "L4-1-24G"
USER_DATA = b"#cloud-config\nruncmd: [true]\n"


def spec(name: str = "8c0b4a7e-2f51-4c1e-9d53-3a7f2f6f0c11", **fields: object) -> ServerSpec:
    values: dict[str, object] = {
        "name": name,
        "zone": ZONE,
        "instance_type": GPU_TYPE,
        "model": "Qwen/Qwen2.5-0.5B-Instruct",
        "control_plane_url": "http://127.0.0.1:1",
        "bootstrap_secret": "b" * 40,
        "engine_key": "e" * 40,
        "data_volume_gb": 50,
        **fields,
    }
    return ServerSpec(**values)  # type: ignore[arg-type]


@pytest.fixture
def fake() -> Iterator[tuple[FakeScalewayCloud, FakeScalewayServer]]:
    cloud = FakeScalewayCloud(transition_s=0.05)
    api = FakeScalewayServer(cloud).start()
    yield cloud, api
    api.stop()


def provider_for(api: FakeScalewayServer, **config: object) -> ScalewayProvider:
    values: dict[str, object] = {
        "access_key": DEFAULT_ACCOUNT.access_key,
        "secret_key": DEFAULT_ACCOUNT.secret_key,
        "project_id": DEFAULT_ACCOUNT.default_project_id,
        "zones": (ZONE, "pl-waw-2"),
        "api_url": api.url,
        **config,
    }
    return ScalewayProvider(ScalewayConfig(**values), lambda _spec: USER_DATA)  # type: ignore[arg-type]


def until(check: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def held(cloud: FakeScalewayCloud) -> list[str]:
    return sorted(f"{r.kind}:{r.name}" for r in cloud.resources() if r.kind != "ip")


def test_create_is_idempotent_and_terminate_leaves_nothing(
    fake: tuple[FakeScalewayCloud, FakeScalewayServer],
) -> None:
    cloud, api = fake
    provider = provider_for(api)
    first = asyncio.run(provider.create(spec()))
    # A retry (after a crash, say) finds the same server and volume: nothing doubled.
    again = asyncio.run(provider.create(spec()))
    assert again.provider_id == first.provider_id
    name = "inventiv-8c0b4a7e-2f51-4c1e-9d53-3a7f2f6f0c11"
    assert held(cloud) == [
        f"block_volume:{name}-boot",
        f"block_volume:{name}-data",
        f"server:{name}",
    ]
    volumes = {v.name: v for v in first.volumes}
    data = volumes[f"{name}-data"]
    assert data.size_gb == 50 and data.server_id == first.provider_id
    boot = volumes[f"{name}-boot"]  # tracked as the boot volume, by its name
    assert boot.size_gb == 125 and boot.server_id == first.provider_id
    server_id = first.provider_id.split("/", 1)[1]
    assert cloud.servers[server_id].user_data["cloud-init"] == USER_DATA

    until(
        lambda: asyncio.run(provider.get(first.provider_id)).status == "running",  # type: ignore[union-attr]
        "the server runs",
    )
    running = asyncio.run(provider.get(first.provider_id))
    assert running is not None and running.ip_address == "127.0.0.1"
    assert running.health_port == 8080 and running.engine_port == 8000
    assert [s.provider_id for s in asyncio.run(provider.get_many([first.provider_id]))] == [
        first.provider_id
    ]
    found = asyncio.run(provider.find_by_name(spec().name))
    assert found is not None and found.provider_id == first.provider_id
    assert [s.name for s in asyncio.run(provider.list_servers())] == [spec().name]

    # Terminate, as the terminator does: until the server is gone, then its volumes.
    asyncio.run(provider.terminate(first.provider_id))
    until(lambda: asyncio.run(provider.get(first.provider_id)) is None, "the server is gone")
    asyncio.run(provider.terminate(first.provider_id))  # gone already: success
    for volume in asyncio.run(provider.list_volumes()):
        assert volume.server_id is None  # Scaleway only detached them
        asyncio.run(provider.delete_volume(volume.provider_id))
    asyncio.run(provider.delete_volume(first.volumes[0].provider_id))  # gone: success
    assert cloud.resources() == []


def test_a_server_in_transit_is_terminated_once_it_settles(
    fake: tuple[FakeScalewayCloud, FakeScalewayServer],
) -> None:
    cloud, api = fake
    cloud.transition_s = 1.0  # slow enough to be caught starting
    provider = provider_for(api)
    made = asyncio.run(provider.create(spec()))
    # Starting: Scaleway refuses actions in transit. Past the call's own retries (none
    # here) the refusal is handed up as retryable: the terminator's next pass retries.
    provider.calls.retries = 0
    with pytest.raises(ProviderError) as refused:
        asyncio.run(provider.terminate(made.provider_id))
    assert refused.value.retryable and refused.value.code == "provider_transient"
    provider.calls.retries = 3
    until(lambda: asyncio.run(provider.get(made.provider_id)).status == "running", "runs")  # type: ignore[union-attr]
    asyncio.run(provider.terminate(made.provider_id))
    until(lambda: asyncio.run(provider.get(made.provider_id)) is None, "the server is gone")


def test_out_of_stock_quota_and_credentials_are_typed_causes(
    fake: tuple[FakeScalewayCloud, FakeScalewayServer],
) -> None:
    cloud, api = fake
    provider = provider_for(api)
    cloud.faults.out_of_stock(ZONE, GPU_TYPE)
    with pytest.raises(ProviderError) as out:
        asyncio.run(provider.create(spec()))
    assert (out.value.code, out.value.retryable) == ("out_of_stock", False)
    assert "no capacity" in str(out.value)
    cloud.faults.restock(ZONE, GPU_TYPE)
    assert held(cloud) == []  # the attempt's data volume went with it
    # Out of stock only at power-on: the server made for the attempt goes too.
    cloud.faults.out_of_stock(ZONE, GPU_TYPE, at="poweron")
    with pytest.raises(ProviderError) as at_poweron:
        asyncio.run(provider.create(spec()))
    assert at_poweron.value.code == "out_of_stock"
    assert held(cloud) == []
    cloud.faults.restock(ZONE, GPU_TYPE)

    cloud.faults.set_quota("instances_gpus", 0)
    with pytest.raises(ProviderError) as quota:
        asyncio.run(provider.create(spec()))
    assert (quota.value.code, quota.value.retryable) == ("quota_exceeded", False)
    assert "quota of 0" in str(quota.value), str(quota.value)
    cloud.faults.set_quota("instances_gpus", None)

    assert asyncio.run(provider.check_credentials()) is True
    wrong = provider_for(api, secret_key="00000000-0000-4000-8000-000000000000")
    assert asyncio.run(wrong.check_credentials()) is False
    malformed = provider_for(api, access_key="not-a-key")
    assert asyncio.run(malformed.check_credentials()) is False
    with pytest.raises(ProviderError) as denied:
        asyncio.run(wrong.create(spec()))
    assert (denied.value.code, denied.value.retryable) == ("invalid_credentials", False)
    # Nothing was made by the refused attempts.
    assert held(cloud) == []


def test_transient_failures_are_retried_within_a_call(
    fake: tuple[FakeScalewayCloud, FakeScalewayServer],
) -> None:
    cloud, api = fake
    provider = provider_for(api)
    provider.calls.retry_base_s = 0.01
    cloud.faults.fail_next(2, method="POST", path="/instance/v1/zones/*/servers", status=503)
    made = asyncio.run(provider.create(spec()))
    assert made.provider_id.startswith(f"{ZONE}/")
    assert cloud.faults.pending_failures() == 0
    # More failures than the retries: handed up as retryable, for the loop's backoff.
    cloud.faults.fail_next(10, method="GET", path="/instance/v1/zones/*/servers/*", status=503)
    with pytest.raises(ProviderError) as busy:
        asyncio.run(provider.get(made.provider_id))
    assert busy.value.retryable and busy.value.code == "provider_transient"


def test_the_catalog_reads_gpu_types_prices_and_stock(
    fake: tuple[FakeScalewayCloud, FakeScalewayServer],
) -> None:
    cloud, api = fake
    cloud.faults.set_availability("pl-waw-2", GPU_TYPE, "shortage")
    cloud.faults.set_availability(ZONE, GPU_TYPE, "scarce")
    types = {t.code: t for t in asyncio.run(provider_for(api).sync_catalog())}
    l4 = types[GPU_TYPE]
    assert l4.gpu_count == 1 and l4.gpu_memory_gb == 24 and l4.hourly_price_eur > 0
    assert l4.availability == {ZONE: "scarce", "pl-waw-2": "shortage"}
    assert l4.zones == (ZONE,)  # no deployment where Scaleway has none
    assert all(t.gpu_count > 0 for t in types.values())  # GPU types only
