"""Each refusal reaches the real SDK as Scaleway sends it: a `ScalewayException` with the
status and the JSON body whose `type` a client branches on; and each injected fault
(stock, quota, failing calls, refused keys) behaves as the provider's tests need."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from scaleway import Client
from scaleway.block.v1alpha1 import BlockV1Alpha1API
from scaleway.instance.v1.custom_api import InstanceUtilsV1API
from scaleway.marketplace.v2 import MarketplaceV2API
from scaleway_core.api import ScalewayException

from tests.scaleway.conftest import GPU_ZONE, gpu_image_id, sdk_client, wait_for_state
from tests.support.fake_scaleway import (
    DEFAULT_ACCOUNT,
    Account,
    FakeScalewayCloud,
    FakeScalewayServer,
)
from tests.support.fake_scaleway.faults import QUOTA_GPUS

OTHER_GPU_ZONE = "pl-waw-2"


def refusal(call: Callable[[], object]) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of the ScalewayException `call` raises."""
    with pytest.raises(ScalewayException) as raised:
        call()
    assert raised.value.status_code is not None
    return raised.value.status_code, json.loads(raised.value.response.text)


def new_gpu_server(instance: InstanceUtilsV1API, image: str, zone: str = GPU_ZONE) -> str:
    server = instance.create_server(
        commercial_type="L4-1-24G", zone=zone, image=image, name="inst-" + uuid.uuid4().hex[:6]
    ).server
    return str(server.id)


def test_out_of_stock_in_one_zone_then_created_in_another(
    cloud: FakeScalewayCloud, instance: InstanceUtilsV1API, marketplace: MarketplaceV2API
) -> None:
    cloud.faults.out_of_stock(GPU_ZONE, "L4-1-24G")
    status, body = refusal(lambda: new_gpu_server(instance, gpu_image_id(marketplace)))
    assert (status, body["type"], body["resource"]) == (409, "out_of_stock", "L4-1-24G")
    assert cloud.resources() == []  # a refused create leaves nothing behind

    other_image = gpu_image_id(marketplace, OTHER_GPU_ZONE)
    server_id = new_gpu_server(instance, other_image, OTHER_GPU_ZONE)
    assert instance.get_server(server_id=server_id, zone=OTHER_GPU_ZONE).server.zone == (
        OTHER_GPU_ZONE
    )
    # Restocked, the first zone sells again.
    cloud.faults.restock(GPU_ZONE, "L4-1-24G")
    new_gpu_server(instance, gpu_image_id(marketplace))


def test_out_of_stock_at_power_on_leaves_a_stopped_server_to_clean_up(
    cloud: FakeScalewayCloud, instance: InstanceUtilsV1API, marketplace: MarketplaceV2API
) -> None:
    server_id = new_gpu_server(instance, gpu_image_id(marketplace))
    cloud.faults.out_of_stock(GPU_ZONE, "L4-1-24G", at="poweron")
    status, body = refusal(lambda: instance.server_action(server_id=server_id, action="poweron"))
    assert (status, body["type"]) == (409, "out_of_stock")
    assert instance.get_server(server_id=server_id).server.state == "stopped"
    instance.delete_server(server_id=server_id)
    assert {r.kind for r in cloud.resources()} == {"block_volume"}


def test_quota_of_gpus_refuses_the_server_past_it(
    cloud: FakeScalewayCloud, instance: InstanceUtilsV1API, marketplace: MarketplaceV2API
) -> None:
    image = gpu_image_id(marketplace)
    cloud.faults.set_quota(QUOTA_GPUS, 1)
    new_gpu_server(instance, image)
    status, body = refusal(lambda: new_gpu_server(instance, image))
    assert (status, body["type"]) == (403, "quotas_exceeded")
    [detail] = body["details"]
    assert (detail["resource"], detail["quota"], detail["current"]) == (QUOTA_GPUS, 1, 1)
    assert len(instance.list_servers().servers) == 1


def test_not_found_names_the_resource(
    instance: InstanceUtilsV1API, block: BlockV1Alpha1API
) -> None:
    missing = str(uuid.uuid4())
    status, body = refusal(lambda: instance.get_server(server_id=missing))
    assert (status, body["type"], body["resource"], body["resource_id"]) == (
        404,
        "not_found",
        "instance_server",
        missing,
    )
    status, body = refusal(lambda: block.delete_volume(volume_id=missing))
    assert (status, body["type"], body["resource_id"]) == (404, "not_found", missing)


def test_invalid_arguments_name_the_argument(instance: InstanceUtilsV1API) -> None:
    status, body = refusal(
        lambda: instance.create_server(commercial_type="L4-1-24G", zone="fr-par-1", image="x")
    )
    assert (status, body["type"]) == (400, "invalid_arguments")
    assert body["details"][0]["argument_name"] == "commercial_type"


def test_actions_on_a_server_in_transit_are_transient_state(
    serve: Callable[[FakeScalewayCloud], FakeScalewayServer], marketplace: MarketplaceV2API
) -> None:
    cloud = FakeScalewayCloud(transition_s=30)
    instance = InstanceUtilsV1API(sdk_client(serve(cloud)))
    server_id = new_gpu_server(instance, gpu_image_id(marketplace))
    instance.server_action(server_id=server_id, action="poweron")
    status, body = refusal(lambda: instance.server_action(server_id=server_id, action="poweroff"))
    assert (status, body["type"], body["current_state"]) == (409, "transient_state", "starting")
    status, body = refusal(lambda: instance.delete_server(server_id=server_id))
    assert (status, body["type"]) == (409, "transient_state")


def test_terminate_needs_a_running_server(
    instance: InstanceUtilsV1API, marketplace: MarketplaceV2API
) -> None:
    server_id = new_gpu_server(instance, gpu_image_id(marketplace))
    status, _ = refusal(lambda: instance.server_action(server_id=server_id, action="terminate"))
    assert status == 400
    instance.server_action(server_id=server_id, action="poweron")
    wait_for_state(instance, server_id, "running")
    status, _ = refusal(lambda: instance.delete_server(server_id=server_id))
    assert status == 400


def test_attached_block_volume_cannot_be_deleted(
    instance: InstanceUtilsV1API, block: BlockV1Alpha1API, marketplace: MarketplaceV2API
) -> None:
    server_id = new_gpu_server(instance, gpu_image_id(marketplace))
    boot = instance.get_server(server_id=server_id).server.volumes["0"]
    status, body = refusal(lambda: block.delete_volume(volume_id=boot.id))
    assert (status, body["type"], body["precondition"]) == (
        412,
        "precondition_failed",
        "resource_still_in_use",
    )


def test_a_read_only_key_is_denied_writes(
    cloud: FakeScalewayCloud, api: FakeScalewayServer
) -> None:
    reader = Account(
        access_key="SCWFAKEREADONLYKEY01",
        secret_key=str(uuid.uuid4()),
        organization_id=DEFAULT_ACCOUNT.organization_id,
        project_ids=DEFAULT_ACCOUNT.project_ids,
        read_only=True,
    )
    cloud.add_account(reader)
    instance = InstanceUtilsV1API(sdk_client(api, reader))
    assert instance.list_servers().servers == []
    status, body = refusal(lambda: instance.create_ip())
    assert (status, body["type"]) == (403, "permissions_denied")
    assert body["details"][0]["action"] == "write"


def test_bad_or_revoked_credentials_are_401(
    cloud: FakeScalewayCloud, api: FakeScalewayServer, instance: InstanceUtilsV1API
) -> None:
    stranger = Account(
        access_key="SCWFAKEUNKNOWNKEY001",
        secret_key=str(uuid.uuid4()),
        organization_id=str(uuid.uuid4()),
        project_ids=(str(uuid.uuid4()),),
    )
    status, body = refusal(lambda: InstanceUtilsV1API(sdk_client(api, stranger)).list_servers())
    assert (status, body["type"], body["method"]) == (401, "denied_authentication", "api_key")

    instance.list_servers()
    cloud.faults.reject_credentials = True
    status, body = refusal(lambda: instance.list_servers())
    assert (status, body["type"]) == (401, "denied_authentication")


def test_terminate_retried_through_failures_until_nothing_is_left(
    cloud: FakeScalewayCloud,
    instance: InstanceUtilsV1API,
    block: BlockV1Alpha1API,
    marketplace: MarketplaceV2API,
) -> None:
    server_id = new_gpu_server(instance, gpu_image_id(marketplace))
    instance.server_action(server_id=server_id, action="poweron")
    wait_for_state(instance, server_id, "running")
    cloud.faults.fail_next(2, method="POST", path="*/servers/*/action", status=503)
    cloud.faults.fail_next(1, method="DELETE", path="/block/*/volumes/*", status=409)

    failures = 0
    while True:
        try:
            instance.server_action(server_id=server_id, action="terminate")
            break
        except ScalewayException as exc:
            assert exc.status_code == 503
            failures += 1
    assert failures == 2
    with pytest.raises(ScalewayException):
        wait_for_state(instance, server_id, "gone")
    [volume] = block.list_volumes().volumes
    status, body = refusal(lambda: block.delete_volume(volume_id=volume.id))
    assert (status, body["type"]) == (409, "transient_state")
    block.delete_volume(volume_id=volume.id)

    assert cloud.resources() == []
    assert cloud.faults.pending_failures() == 0
    actions = [s for m, p, s in cloud.requests if m == "POST" and p.endswith("/action")]
    assert actions == [202, 503, 503, 202]


def test_a_body_that_is_not_json_breaks_the_sdk_before_it_raises(
    cloud: FakeScalewayCloud, instance: InstanceUtilsV1API
) -> None:
    # What a proxy in front of the API may answer: the SDK parses every error body as
    # JSON, so a client sees a requests JSONDecodeError, not a ScalewayException.
    cloud.faults.fail_next(1, path="*/servers", status=502, raw_text="Bad Gateway")
    with pytest.raises(requests.exceptions.JSONDecodeError):
        instance.list_servers()
    assert instance.list_servers().servers == []


def test_the_marketplace_answers_without_credentials(api: FakeScalewayServer) -> None:
    anonymous = Client(default_zone=GPU_ZONE, api_url=api.url, api_allow_insecure=True)
    images = MarketplaceV2API(anonymous, bypass_validation=True).list_local_images(
        image_label="ubuntu_jammy_gpu_os_12"
    )
    assert [i.zone for i in images.local_images] == [GPU_ZONE]
