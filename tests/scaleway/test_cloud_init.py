"""The user data a Scaleway GPU VM boots with: cloud-init's own schema check accepts it,
secrets stay in the root-only env file, hostile values stay inert, and the VM it
describes, started here (mock engine for vLLM), is a real agent serving a guarded engine.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from inventiv_common.agent_checksum import expected_agent_checksum
from inventiv_common.net import free_port
from inventiv_common.providers import cloud_init
from inventiv_common.providers.cloud_init import (
    AgentDelivery,
    EngineLaunch,
    VmBoot,
    engine_args_to_flags,
    render_user_data,
)
from tests.support.scaleway_vm import VmHost, read_user_data

BOOTSTRAP = "bs_" + "b" * 40
ENGINE_KEY = "ek_" + "e" * 40
HF_TOKEN = "hf_" + "h" * 34
SECRETS = (BOOTSTRAP, ENGINE_KEY, HF_TOKEN)
# Quotes, command substitution, a newline and a flag: each must arrive as plain text.
HOSTILE = "evil'\"; $(touch {marker}) `id` \n--api-key=open ${HOME}"


def boot(**engine_changes: object) -> VmBoot:
    engine = EngineLaunch(
        model="Qwen/Qwen2.5-0.5B-Instruct",
        served_name="qwen-small",
        gpu_count=2,
        max_model_len=4096,
        engine_key=ENGINE_KEY,
        hf_token=HF_TOKEN,
        extra_args=engine_args_to_flags({"enable_prefix_caching": True}),
    )
    return VmBoot(
        instance_id="5f0c2a7e-3b1d-4c8e-9a6f-0d2e4b6c8a10",
        control_plane_url="https://control.example.org",
        bootstrap_secret=BOOTSTRAP,
        engine=replace(engine, **engine_changes),  # type: ignore[arg-type]
        agent=AgentDelivery(
            package_url="https://control.example.org/agent/inventiv_agents-0.1.0-py3-none-any.whl",
            package_sha256="a" * 64,
            code_checksum=expected_agent_checksum() or "c" * 64,
        ),
        data_device="/dev/sdb",
    )


def schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("cloud-init")
    if binary is None:
        pytest.fail(
            "cloud-init is not installed: apt-get install -y --no-install-recommends cloud-init"
        )
    return subprocess.run(
        [binary, "schema", "--config-file", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("case", ["plain", "without_hf_token", "hostile"])
def test_user_data_passes_cloud_inits_schema_check(tmp_path: Path, case: str) -> None:
    cases: dict[str, dict[str, object]] = {
        "plain": {},
        "without_hf_token": {"hf_token": None},
        "hostile": {"model": HOSTILE, "served_name": HOSTILE, "extra_args": (HOSTILE,)},
    }
    changes = cases[case]
    path = tmp_path / "user-data"
    path.write_text(render_user_data(boot(**changes)))
    result = schema_check(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout


def test_the_schema_check_does_refuse_a_broken_document(tmp_path: Path) -> None:
    # So that the check above can fail: a file to write without its path.
    broken = yaml.safe_load(render_user_data(boot()))
    del broken["write_files"][0]["path"]
    path = tmp_path / "user-data"
    path.write_text("#cloud-config\n" + yaml.safe_dump(broken))
    result = schema_check(path)
    assert result.returncode != 0
    assert "path" in result.stdout + result.stderr


def test_secrets_live_only_in_the_root_only_env_file() -> None:
    plan = read_user_data(render_user_data(boot()))
    holders = {path for path, f in plan.files.items() if any(s in f.content for s in SECRETS)}
    assert holders == {cloud_init.AGENT_ENV_FILE}
    env_file = plan.files[cloud_init.AGENT_ENV_FILE]
    assert (env_file.permissions, env_file.owner) == ("0600", "root:root")
    assert plan.agent_env["WORKER_BOOTSTRAP_SECRET"] == BOOTSTRAP
    assert plan.agent_env["ENGINE_API_KEY"] == ENGINE_KEY
    # Everything else (the document without that file's content) holds none of them,
    # nor do the command lines the VM will show in its process list.
    rest = dict(
        plan.document,
        write_files=[
            {**f, "content": ""} if f["path"] == cloud_init.AGENT_ENV_FILE else f
            for f in plan.document["write_files"]
        ],
    )
    visible = [
        yaml.safe_dump(rest),
        plan.agent_env["ENGINE_COMMAND"],
        plan.agent_env["SETUP_COMMAND"],
    ]
    for text in visible:
        for secret in SECRETS:
            assert secret not in text


def test_tensor_parallelism_is_the_types_gpu_count() -> None:
    for gpus in (1, 2, 8):
        engine = read_user_data(render_user_data(boot(gpu_count=gpus))).engine
        assert engine.tensor_parallel_size == gpus
        assert engine.docker_options["--gpus"] == ("all",)
    with pytest.raises(ValueError, match="gpu_count"):
        boot(gpu_count=0)


def test_hf_token_reaches_the_engine_only_when_given() -> None:
    with_token = read_user_data(render_user_data(boot()))
    assert with_token.agent_env["HF_TOKEN"] == HF_TOKEN
    assert "HF_TOKEN" in with_token.engine.forwarded_env
    without = read_user_data(render_user_data(boot(hf_token=None)))
    assert "HF_TOKEN" not in without.agent_env
    assert "HF_TOKEN" not in without.engine.forwarded_env
    assert "hf_" not in render_user_data(boot(hf_token=None))


def test_the_engine_runs_the_model_settings_on_the_data_volume() -> None:
    flags = engine_args_to_flags(
        {"gpu_memory_utilization": 0.85, "enforce-eager": False, "hf_overrides": {"a": 1}}
    )
    plan = read_user_data(render_user_data(boot(extra_args=flags, max_model_len=16384)))
    engine = plan.engine
    assert engine.image == cloud_init.DEFAULT_VLLM_IMAGE
    assert (engine.model, engine.served_name) == ("Qwen/Qwen2.5-0.5B-Instruct", "qwen-small")
    assert engine.max_model_len == 16384
    assert engine.extra_args == ("--gpu-memory-utilization", "0.85", "--hf-overrides", '{"a":1}')
    assert plan.agent_env["MODEL_ID"] == "qwen-small"  # the agent waits for that id
    volume = f"{cloud_init.MODELS_MOUNT}:{cloud_init.CONTAINER_MODELS}"
    assert engine.docker_options["--volume"] == (volume,)
    assert "VLLM_API_KEY" in engine.forwarded_env
    # The volume: formatted only when blank, mounted by label.
    (fs,) = plan.document["fs_setup"]
    assert (fs["device"], fs["overwrite"], fs["label"]) == ("/dev/sdb", False, "inventiv-models")
    assert plan.document["mounts"][0][:2] == ["LABEL=inventiv-models", cloud_init.MODELS_MOUNT]
    image = read_user_data(render_user_data(boot(image="registry.example/vllm:pinned"))).engine
    assert image.image == "registry.example/vllm:pinned"


def test_hostile_values_stay_inert(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = HOSTILE.replace("{marker}", str(marker))
    plan = read_user_data(
        render_user_data(boot(model=hostile, served_name=hostile, extra_args=(hostile,)))
    )
    assert plan.engine.model == hostile
    assert plan.engine.served_name == hostile
    assert plan.engine.extra_args == (hostile,)
    assert "--api-key" not in plan.agent_env["ENGINE_COMMAND"].split()
    # The env file as the unit uses it: sourced by a real sh.
    env_file = tmp_path / "agent.env"
    env_file.write_text(plan.files[cloud_init.AGENT_ENV_FILE].content)
    dump = "import json, os; print(json.dumps(dict(os.environ)))"
    py = sys.executable
    sourced = subprocess.run(
        ["/bin/sh", "-c", f'set -a && . "$1" && exec "$2" -c "{dump}"', "sh", str(env_file), py],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    environment = json.loads(sourced.stdout)
    assert environment["MODEL_ID"] == hostile
    assert environment["ENGINE_API_KEY"] == ENGINE_KEY
    assert {k: environment[k] for k in plan.agent_env} == plan.agent_env
    assert not marker.exists()


@pytest.mark.parametrize(
    "extra",
    [
        ("--api-key", "x"),
        ("--api_key=x",),  # vLLM reads _ as -
        ("--api-k", "x"),  # and takes abbreviations
        ("--port=1",),
        ("--host", "127.0.0.1"),
        ("--max-model-len=9",),
        ("-tp", "1"),
        ("--config", "elsewhere.yaml"),
    ],
)
def test_model_settings_cannot_override_the_platforms_flags(extra: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="set by the platform"):
        boot(extra_args=extra)


def test_bad_input_is_refused_before_anything_is_rendered() -> None:
    with pytest.raises(ValueError, match="NUL"):
        boot(model="a\x00b")
    with pytest.raises(ValueError, match="engine_key"):
        boot(engine_key="key\nINJECTED=1")
    with pytest.raises(ValueError, match="not a flag name"):
        engine_args_to_flags({"x; rm -rf /": True})
    with pytest.raises(ValueError, match="wheel"):
        AgentDelivery("https://control.example.org/agent", "a" * 64, "b" * 64)
    with pytest.raises(ValueError, match="sha256"):
        AgentDelivery("https://c.example/agent/x-1-py3-none-any.whl", "A" * 64, "b" * 64)


@pytest.fixture
def served_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on a free loopback port (the control plane's
    package download, as the VM's curl sees it)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_installer_refuses_a_package_whose_sha256_differs(
    tmp_path: Path, served_dir: tuple[Path, str]
) -> None:
    root, base = served_dir
    wheel = "inventiv_agents-0.1.0-py3-none-any.whl"
    (root / wheel).write_bytes(b"not the package the control plane meant")
    honest = hashlib.sha256(b"the expected package").hexdigest()
    delivery = AgentDelivery(f"{base}/{wheel}", honest, "c" * 64)
    plan = read_user_data(render_user_data(replace(boot(), agent=delivery)))
    installer = tmp_path / "install-agent"
    installer.write_text(plan.files[cloud_init.INSTALLER].content)
    installer.chmod(0o755)
    # The rendered parameters, with only the agent's home moved off /opt.
    params = plan.files[cloud_init.AGENT_INSTALL_ENV_FILE].content.replace(
        f"AGENT_HOME={cloud_init.AGENT_HOME}", f"AGENT_HOME={tmp_path / 'home'}"
    )
    (tmp_path / "install.env").write_text(params)
    result = subprocess.run(
        [str(installer), str(tmp_path / "install.env")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "sha256 is not the expected one" in result.stderr
    assert sorted(p.name for p in (tmp_path / "home").iterdir()) == []  # nothing installed


def test_the_vm_runs_a_real_agent_beside_an_engine_that_answers_only_with_the_key(
    tmp_path: Path,
) -> None:
    user_data = render_user_data(boot(max_model_len=2048))
    host = VmHost(tmp_path)  # as the fake cloud calls it on power-on and power-off
    server = {"id": "3d1f6b0e-aaaa-4bbb-8ccc-dddddddddddd", "state": "running"}
    host.on_running(server, {"cloud-init": user_data.encode()})
    vm = host.vms[server["id"]]
    try:
        assert vm.wait_healthy("/healthz").json() == {"status": "ok"}
        # Ready means the agent found its engine serving the model, with the engine key.
        vm.wait_healthy("/readyz")
        info = httpx.get(f"{vm.agent_url}/info", timeout=5).json()
        assert info["instance_id"] == boot().instance_id
        assert info["model_id"] == "qwen-small"
        assert info["agent_checksum"] == expected_agent_checksum()

        chat = {"model": "qwen-small", "messages": [{"role": "user", "content": "hello"}]}
        url = f"{vm.engine_url}/v1/chat/completions"
        answer = httpx.post(url, json=chat, headers={"Authorization": f"Bearer {ENGINE_KEY}"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"]
        assert httpx.post(url, json=chat).status_code == 401
        wrong = httpx.post(url, json=chat, headers={"Authorization": "Bearer not-the-key"})
        assert wrong.status_code == 401
        # The engine holds the rendered max model length.
        long = dict(chat, max_tokens=4096)
        too_long = httpx.post(url, json=long, headers={"Authorization": f"Bearer {ENGINE_KEY}"})
        assert too_long.status_code == 400

        # No secret on any command line of the VM's processes.
        agent = psutil.Process(vm.process.pid)
        for process in [agent, *agent.children(recursive=True)]:
            command_line = " ".join(process.cmdline())
            assert not any(secret in command_line for secret in SECRETS), command_line
    finally:
        host.on_stopped(server)
    assert host.vms == {}
    # A power-off drains: the agent stopped its engine, then itself.
    assert vm.process.returncode in (0, -signal.SIGTERM), vm.output()
    events = (vm.state_dir / "worker-events.log").read_text().splitlines()
    assert [json.loads(line)["event"] for line in events][-3:] == [
        "engine_stopped",
        "phase",
        "agent_stopped",
    ]
    # Nor in anything the VM logged.
    logs = [vm.log_path, *vm.state_dir.rglob("*.log*")]
    assert len(logs) > 1
    for log in logs:
        text = log.read_text(errors="replace")
        assert not any(secret in text for secret in SECRETS), log
