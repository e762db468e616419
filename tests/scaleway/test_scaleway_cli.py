"""`inventiv scaleway check` and `inventiv scaleway smoke`, run as an operator runs them
(the installed command in a process of its own), against the fake Scaleway API: check
reads the account's GPU types, prices and stock through the real SDK; smoke drives a
real api and orchestrator (and finops, for the cost) deploying on the fake, whose
servers boot the real worker agent from their user data."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from inventiv_common.net import free_port
from tests.api.conftest import ADMIN_PASSWORD
from tests.lifecycle.conftest import Platform
from tests.support.fake_scaleway import DEFAULT_ACCOUNT, FakeScalewayCloud, FakeScalewayServer
from tests.support.paths import ROOT
from tests.support.processes import ServiceProcess, clean_env
from tests.support.scaleway_platform import GPU_TYPE, MODEL, ZONE, Cloud
from tests.support.waiting import wait_until

SECRET = DEFAULT_ACCOUNT.secret_key


def inventiv(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inventiv_common.cli", *args],
        env=clean_env(**env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def account_settings(api: FakeScalewayServer, tmp_path: Path) -> dict[str, str]:
    # The secret as a file, as an operator keeps it; the other values as variables.
    secret_file = tmp_path / "scaleway_secret_key"
    secret_file.write_text(SECRET + "\n")
    return {
        "SCALEWAY_API_URL": api.url,
        "SCALEWAY_ACCESS_KEY": DEFAULT_ACCOUNT.access_key,
        "SCALEWAY_SECRET_KEY_FILE": str(secret_file),
        "SCALEWAY_PROJECT_ID": DEFAULT_ACCOUNT.default_project_id,
        "SCALEWAY_ZONES": "fr-par-2,pl-waw-2",
    }


def test_check_lists_each_zones_gpu_types_with_price_and_stock(
    cloud: FakeScalewayCloud, api: FakeScalewayServer, tmp_path: Path
) -> None:
    cloud.faults.set_availability("pl-waw-2", GPU_TYPE, "shortage")
    cloud.faults.set_availability("fr-par-2", "H100-1-80G", "scarce")
    done = inventiv("scaleway", "check", env=account_settings(api, tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "credentials    accepted" in out
    assert DEFAULT_ACCOUNT.default_project_id in out
    fr_par, pl_waw = out.split("zone fr-par-2:")[1].split("zone pl-waw-2:")
    # type, GPUs, GPU memory, EUR/hour, availability: as the fake's catalog says them.
    assert re.search(r"^\s+L4-1-24G\s+1\s+24 GB\s+0\.7500\s+available$", fr_par, re.M), out
    assert re.search(r"^\s+H100-1-80G\s+1\s+80 GB\s+2\.7500\s+scarce$", fr_par, re.M), out
    assert re.search(r"^\s+L4-1-24G\s+1\s+24 GB\s+0\.7500\s+shortage$", pl_waw, re.M), out
    assert "usable:" in out
    assert SECRET not in out + done.stderr


def test_check_names_the_refusal_and_fails(
    cloud: FakeScalewayCloud, api: FakeScalewayServer, tmp_path: Path
) -> None:
    cloud.faults.reject_credentials = True
    done = inventiv("scaleway", "check", env=account_settings(api, tmp_path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "credentials    refused (invalid_credentials)" in done.stdout
    (reason,) = done.stderr.strip().splitlines()
    assert reason.startswith("inventiv scaleway check: not usable: Scaleway refused the")
    assert SECRET not in done.stdout + done.stderr


def test_check_fails_when_no_zone_has_a_gpu_in_stock(
    cloud: FakeScalewayCloud, api: FakeScalewayServer, tmp_path: Path
) -> None:
    settings = {**account_settings(api, tmp_path), "SCALEWAY_ZONES": "fr-par-1"}
    done = inventiv("scaleway", "check", env=settings)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no GPU types in fr-par-1" in done.stdout
    assert "no GPU type is in stock in fr-par-1" in done.stderr


def test_check_says_which_settings_are_missing(tmp_path: Path) -> None:
    done = inventiv(
        "scaleway", "check", env={"SCALEWAY_PROJECT_ID": DEFAULT_ACCOUNT.default_project_id}
    )
    assert done.returncode == 2
    assert "SCALEWAY_ACCESS_KEY, SCALEWAY_SECRET_KEY not set" in done.stderr


@pytest.fixture
def finops(scaleway_platform: Platform, tmp_path: Path) -> Iterator[ServiceProcess]:
    """Finops beside the platform, billing every second, so smoke reads its figure."""
    port = free_port()
    env = {**scaleway_platform.env, "FINOPS_PORT": str(port), "FINOPS_INTERVAL_S": "1"}
    process = ServiceProcess("inventiv_finops", port, env, tmp_path / "finops.log")
    process.wait_ready()
    yield process
    process.stop()


def smoke(platform: Platform, *extra: str) -> subprocess.CompletedProcess[str]:
    return inventiv(
        *("scaleway", "smoke", "--zone", ZONE, "--type", GPU_TYPE, "--model", MODEL),
        *("--api", platform.api.base_url, "--poll", "0.2", *extra),
        env={"INVENTIV_PASSWORD": ADMIN_PASSWORD},
        timeout=600,
    )


def step_lines(output: str, step: str) -> list[str]:
    return [
        line.split(f"] {step}: ", 1)[1] for line in output.splitlines() if f"] {step}: " in line
    ]


def test_smoke_deploys_chats_terminates_and_reports_the_billed_cost(
    scaleway_platform: Platform, scaleway_cloud: Cloud, finops: ServiceProcess
) -> None:
    done = smoke(scaleway_platform)
    out = done.stdout
    print(out)  # the run as an operator sees it, shown when an assertion fails
    assert done.returncode == 0, out + done.stderr + finops.output()[-2000:]
    assert step_lines(out, "login") == [f"admin at {scaleway_platform.api.base_url}"]
    catalog = step_lines(out, "catalog")[0]
    assert re.match(r"L4-1-24G \(1 GPU, 24 GB, 0\.750* EUR/hour\) in fr-par-2 ", catalog), out
    (requested,) = step_lines(out, "deploy")
    instance_id = requested.split()[1]
    states = [line.split(" (")[0] for line in step_lines(out, "ready")]
    assert states[-1] == "ready" and len(states) > 1, out
    assert set(states) <= {"provisioning", "booting", "installing", "starting", "ready"}, out
    tokens = step_lines(out, "chat")[-1]
    prompt, completion, total = map(int, re.findall(r"\d+", tokens))
    assert completion == 16 and total == prompt + completion and prompt > 0, tokens
    assert step_lines(out, "terminate")[-1].startswith("terminated (")
    assert step_lines(out, "revoke key") == ["temporary key revoked"]
    # Finops' own figure: whole minutes at the type's hourly price, to the cent's 1/100.
    (cost,) = step_lines(out, "cost")
    amount, minutes = re.fullmatch(
        r"(\d+\.\d{4}) EUR for (\d+) GPU minute\(s\), billed by finops", cost
    ).groups()  # type: ignore[union-attr]
    assert Decimal(amount) == (Decimal("0.75") * int(minutes) / 60).quantize(Decimal("0.0001"))
    assert out.splitlines()[-1].startswith("smoke passed in ")
    assert done.stderr == ""

    instance = scaleway_platform.instance(instance_id)
    assert instance["status"] == "terminated"
    keys = scaleway_platform.admin.get("/api_keys").json()
    assert [k["revoked_at"] is not None for k in keys if "smoke" in k["name"]] == [True]
    wait_until(lambda: scaleway_cloud.fake.resources() == [], 60, "nothing left at the fake")


def test_smoke_that_fails_still_terminates_what_it_started(
    scaleway_platform: Platform, scaleway_cloud: Cloud
) -> None:
    # Servers power on but no VM boots behind them: the instance never becomes ready.
    scaleway_cloud.fake.on_running = None
    done = smoke(scaleway_platform, "--ready-timeout", "20", "--cost-wait", "0")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    made = [r for r in scaleway_cloud.fake.requests if r[0] == "POST" and r[1].endswith("/servers")]
    assert made and made[0][2] in (200, 201), "a server was made before the smoke gave up"
    assert step_lines(out, "terminate")[-1].startswith("terminated ("), out
    (failed,) = done.stderr.splitlines()
    assert failed.startswith("smoke failed at ready: still "), done.stderr
    (cost,) = step_lines(out, "cost")
    assert re.search(r", estimate \(\d+ min x 0\.750* EUR/h / 60, counted", cost), cost
    wait_until(lambda: scaleway_cloud.fake.resources() == [], 60, "nothing left at the fake")
