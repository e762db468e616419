"""The fake Scaleway API answers the real SDK: a full server cycle, the catalog, IPs,
user data reaching the VM's boot hook, and nothing left held at the end."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest
from scaleway import Client
from scaleway.block.v1 import BlockV1API
from scaleway.block.v1alpha1 import BlockV1Alpha1API, CreateVolumeRequestFromEmpty
from scaleway.instance.v1 import VolumeServerTemplate
from scaleway.instance.v1.custom_api import InstanceUtilsV1API
from scaleway.marketplace.v2 import MarketplaceV2API
from scaleway_core.api import ScalewayException

from inventiv_common.net import free_port
from tests.scaleway.conftest import GPU_ZONE, gpu_image_id, sdk_client, wait_for_state
from tests.support.fake_scaleway import FakeScalewayCloud, FakeScalewayServer
from tests.support.paths import ROOT

GB = 1000**3
CLOUD_INIT = b"#cloud-config\nwrite_files:\n  - path: /etc/inventiv/agent.env\n"


def test_a_full_cycle_leaves_nothing_held(
    cloud: FakeScalewayCloud,
    instance: InstanceUtilsV1API,
    block: BlockV1Alpha1API,
    marketplace: MarketplaceV2API,
) -> None:
    image_id = gpu_image_id(marketplace)
    created = instance.create_server(
        commercial_type="L4-1-24G",
        name="inst-0001",
        image=image_id,
        tags=["inventiv", "instance=0001"],
        volumes={"0": VolumeServerTemplate(volume_type="sbs_volume", size=50 * GB, boot=True)},
    ).server
    assert created.state == "stopped"
    assert created.tags == ["inventiv", "instance=0001"]
    assert created.image.id == image_id
    boot = created.volumes["0"]
    assert (boot.volume_type, boot.size, boot.boot) == ("sbs_volume", 50 * GB, True)
    assert created.public_ip.address == "127.0.0.1"

    instance.set_server_user_data(server_id=created.id, key="cloud-init", content=CLOUD_INIT)
    assert instance.list_server_user_data(server_id=created.id).user_data == ["cloud-init"]
    stored = instance.get_server_user_data(server_id=created.id, key="cloud-init")
    assert stored.content == CLOUD_INIT

    task = instance.server_action(server_id=created.id, action="poweron").task
    assert task.description == "server_poweron"
    # Right after the action the server is on its way, not there: a client polls.
    assert instance.get_server(server_id=created.id).server.state == "starting"
    running = wait_for_state(instance, created.id, "running")
    assert running.allowed_actions == ["poweroff", "terminate", "reboot", "stop_in_place", "backup"]

    mine = instance.list_servers(tags=["instance=0001"])
    assert [s.id for s in mine.servers] == [created.id]
    # The Instance API says its total in `x-total-count`, which the SDK copies over the
    # body's as a string: a client must read int(total_count).
    assert mine.total_count == "1"
    assert instance.list_servers(tags=["instance=0001", "other"]).servers == []

    attached = block.list_volumes(product_resource_id=created.id).volumes
    assert [(v.id, v.status, v.size) for v in attached] == [(boot.id, "in_use", 50 * GB)]
    assert attached[0].references[0].product_resource_id == created.id

    instance.server_action(server_id=created.id, action="terminate")
    _wait_until_gone(instance, created.id)

    # Terminate detaches Block Storage volumes and keeps them: they bill until deleted.
    left = block.get_volume(volume_id=boot.id)
    assert (left.status, left.references) == ("available", [])
    assert [(r.kind, r.id) for r in cloud.resources()] == [("block_volume", boot.id)]
    block.delete_volume(volume_id=boot.id)
    assert cloud.resources() == []


def _wait_until_gone(instance: InstanceUtilsV1API, server_id: str) -> None:
    try:
        wait_for_state(instance, server_id, "gone")
    except ScalewayException as exc:
        assert exc.status_code == 404
    else:
        raise AssertionError("the server outlived its termination")


def test_power_on_hook_gets_the_user_data_the_client_set(
    serve: Callable[[FakeScalewayCloud], FakeScalewayServer], marketplace: MarketplaceV2API
) -> None:
    booted: list[tuple[dict[str, Any], dict[str, bytes]]] = []
    stopped: list[dict[str, Any]] = []
    both = threading.Event()

    def on_running(server: dict[str, Any], user_data: dict[str, bytes]) -> None:
        booted.append((server, user_data))

    def on_stopped(server: dict[str, Any]) -> None:
        stopped.append(server)
        both.set()

    cloud = FakeScalewayCloud(transition_s=0.02, on_running=on_running, on_stopped=on_stopped)
    instance = InstanceUtilsV1API(sdk_client(serve(cloud)))
    server = instance.create_server(
        commercial_type="L4-1-24G", name="inst-hook", image=gpu_image_id(marketplace)
    ).server
    instance.set_server_user_data(server_id=server.id, key="cloud-init", content=CLOUD_INIT)
    instance.set_server_user_data(server_id=server.id, key="ssh-host-fingerprints", content=b"")
    instance.server_action(server_id=server.id, action="poweron")
    wait_for_state(instance, server.id, "running")
    instance.server_action(server_id=server.id, action="poweroff")
    wait_for_state(instance, server.id, "stopped")
    assert both.wait(10)
    cloud.wait_for_hooks()

    [(view, user_data)] = booted
    assert user_data == {"cloud-init": CLOUD_INIT, "ssh-host-fingerprints": b""}
    assert (view["id"], view["state"], view["name"]) == (server.id, "running", "inst-hook")
    assert view["public_ip"]["address"] == "127.0.0.1"
    assert [(s["id"], s["state"]) for s in stopped] == [(server.id, "stopped")]
    assert cloud.hook_errors == []


def test_server_types_prices_gpus_and_availability(
    cloud: FakeScalewayCloud, instance: InstanceUtilsV1API
) -> None:
    types = instance.list_servers_types(zone=GPU_ZONE)
    l4 = types.servers["L4-1-24G"]
    assert (l4.gpu, l4.ncpus, l4.hourly_price) == (1, 8, 0.75)
    assert l4.gpu_info.gpu_name == "L4" and l4.gpu_info.gpu_memory == 24 * 1024**3
    assert types.servers["H100-SXM-8-80G"].gpu == 8
    assert types.servers["DEV1-S"].gpu == 0
    # GPU types are sold in fr-par-2 and pl-waw-2 only.
    assert "L4-1-24G" not in instance.list_servers_types(zone="fr-par-1").servers

    pages: dict[str, Any] = {}
    for page in range(1, 5):
        pages |= instance.list_servers_types(zone=GPU_ZONE, per_page=5, page=page).servers
    assert pages.keys() == types.servers.keys() and len(pages) == int(types.total_count) == 15

    def availability() -> dict[str, str]:
        answer = instance.get_server_types_availability(zone=GPU_ZONE)
        return {name: a.availability for name, a in answer.servers.items()}

    assert set(availability().values()) == {"available"}
    cloud.faults.set_availability(GPU_ZONE, "L40S-1-48G", "scarce")
    cloud.faults.out_of_stock(GPU_ZONE, "H100-1-80G")
    levels = availability()
    assert (levels["L40S-1-48G"], levels["H100-1-80G"], levels["L4-1-24G"]) == (
        "scarce",
        "shortage",
        "available",
    )


def test_local_images_per_zone_and_label(marketplace: MarketplaceV2API) -> None:
    par = marketplace.list_local_images(zone="fr-par-2", image_label="ubuntu_jammy_gpu_os_12")
    waw = marketplace.list_local_images(zone="pl-waw-2", image_label="ubuntu_jammy_gpu_os_12")
    [par_image], [waw_image] = par.local_images, waw.local_images
    assert par_image.id != waw_image.id and par_image.zone == "fr-par-2"
    assert "H100-1-80G" in par_image.compatible_commercial_types
    assert "DEV1-S" not in par_image.compatible_commercial_types
    # No GPU image where no GPU is sold.
    gpu_in_par1 = marketplace.list_local_images(zone="fr-par-1", image_label=par_image.label)
    assert gpu_in_par1.local_images == []


def test_flexible_ip_attached_then_deleted(
    cloud: FakeScalewayCloud, instance: InstanceUtilsV1API, block: BlockV1Alpha1API
) -> None:
    zone = "fr-par-1"
    ip = instance.create_ip(zone=zone, tags=["inventiv"]).ip
    assert (ip.state, ip.server, ip.type_) == ("detached", None, "routed_ipv4")
    server = instance.create_server(
        commercial_type="DEV1-S", zone=zone, image="ubuntu_jammy", name="inst-ip"
    ).server
    attached = instance.update_ip(ip=ip.id, zone=zone, server=server.id).ip
    assert attached.state == "attached" and attached.server.id == server.id
    seen = instance.get_server(server_id=server.id, zone=zone).server
    assert [(p.id, p.address, p.dynamic) for p in seen.public_ips] == [(ip.id, ip.address, False)]
    assert instance.get_ip(ip=ip.address, zone=zone).ip.id == ip.id
    # An IP belongs to its zone.
    with pytest.raises(ScalewayException) as elsewhere:
        instance.get_ip(ip=ip.id, zone=GPU_ZONE)
    assert elsewhere.value.status_code == 404

    # A deleted server leaves its flexible IP reserved (and billing) but detached.
    instance.delete_server(server_id=server.id, zone=zone)
    assert instance.get_ip(ip=ip.id, zone=zone).ip.state == "detached"
    assert [i.id for i in instance.list_ips(zone=zone, tags=["inventiv"]).ips] == [ip.id]
    instance.delete_ip(ip=ip.id, zone=zone)
    for volume in block.list_volumes(zone=zone).volumes:
        block.delete_volume(volume_id=volume.id, zone=zone)
    assert cloud.resources() == []


def test_delete_keeps_local_volumes_terminate_deletes_them(
    cloud: FakeScalewayCloud, instance: InstanceUtilsV1API
) -> None:
    zone = "fr-par-1"

    def with_local_disk(name: str) -> str:
        server = instance.create_server(
            commercial_type="DEV1-S",
            zone=zone,
            image="ubuntu_jammy",
            name=name,
            volumes={
                "0": VolumeServerTemplate(volume_type="sbs_volume", size=20 * GB),
                "1": VolumeServerTemplate(volume_type="l_ssd", size=10 * GB),
            },
        ).server
        assert server.volumes["1"].volume_type == "l_ssd"
        return str(server.id)

    deleted, terminated = with_local_disk("inst-del"), with_local_disk("inst-term")
    instance.delete_server(server_id=deleted, zone=zone)
    instance.server_action(server_id=terminated, zone=zone, action="poweron")
    wait_for_state(instance, terminated, "running", zone)
    instance.server_action(server_id=terminated, zone=zone, action="terminate")
    with pytest.raises(ScalewayException):
        wait_for_state(instance, terminated, "gone", zone)

    [kept] = instance.list_volumes(zone=zone).volumes
    assert (kept.volume_type, kept.server) == ("l_ssd", None)
    assert kept.name == "inst-del-vol-1"
    instance.delete_volume(volume_id=kept.id, zone=zone)
    assert {r.kind for r in cloud.resources()} == {"block_volume"}


def test_lists_page_like_scaleway(instance: InstanceUtilsV1API, block: BlockV1Alpha1API) -> None:
    for n in range(3):
        instance.create_server(commercial_type="PRO2-XXS", image="ubuntu_noble", name=f"p-{n}")
    sizes = [len(instance.list_servers(per_page=2, page=p).servers) for p in (1, 2, 3)]
    assert sizes == [2, 1, 0]
    # The SDK's "all" helper for the Instance API stops at the first empty page.
    assert sorted(s.name for s in instance.list_servers_all(per_page=2)) == ["p-0", "p-1", "p-2"]
    with pytest.raises(ScalewayException) as refused:
        instance.list_servers(per_page=101)
    assert refused.value.status_code == 400

    for n in range(3):
        block.create_volume(
            name=f"v-{n}", from_empty=CreateVolumeRequestFromEmpty(size=GB), tags=[f"t{n}"]
        )
    first = block.list_volumes(page_size=2, tags=["t0", "t1", "t2"])
    assert (len(first.volumes), first.total_count) == (2, 3)
    # Block Storage matches volumes carrying ANY of the tags asked for.
    assert sorted(v.name for v in block.list_volumes(tags=["t0", "t2"]).volumes) == ["v-0", "v-2"]


def test_block_v1_and_v1alpha1_show_the_same_volumes(
    client: Client, block: BlockV1Alpha1API
) -> None:
    made = block.create_volume(name="cache", from_empty=CreateVolumeRequestFromEmpty(size=GB))
    assert made.status == "creating"  # a volume is usable once it is available
    stable = BlockV1API(client).get_volume(volume_id=made.id)
    assert (stable.name, stable.size, stable.project_id) == ("cache", GB, made.project_id)
    listed = BlockV1API(client).list_volumes(include_deleted=False).volumes
    assert [v.id for v in listed] == [made.id]


def test_runs_on_its_own_for_make_dev(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "fake-scaleway.log").open("w+")
    command = [sys.executable, "-m", "tests.support.fake_scaleway", "--port", str(port)]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 20
        while "SCALEWAY_API_URL" not in log_text(log) and time.monotonic() < deadline:
            assert process.poll() is None, log_text(log)
            time.sleep(0.05)
        settings = dict(word.split("=", 1) for word in log_text(log).split())
        assert settings["SCALEWAY_API_URL"] == f"http://127.0.0.1:{port}"
        client = Client(
            access_key=settings["SCALEWAY_ACCESS_KEY"],
            secret_key=settings["SCALEWAY_SECRET_KEY"],
            default_project_id=settings["SCALEWAY_PROJECT_ID"],
            default_zone=GPU_ZONE,
            api_url=settings["SCALEWAY_API_URL"],
            api_allow_insecure=True,
        )
        assert "H100-1-80G" in InstanceUtilsV1API(client).list_servers_types().servers
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        log.close()


def log_text(log: IO[str]) -> str:
    log.seek(0)
    return log.read()
