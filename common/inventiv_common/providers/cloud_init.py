"""The user data a GPU VM boots with: one cloud-config, rendered per instance.

What the VM does with it, in cloud-init's order:

1. Formats the data volume (ext4, labelled) only when it holds no filesystem, and
   mounts it by label through fstab: a reboot, or the same volume on a new server,
   keeps the downloaded models.
2. Writes the agent's environment (the only file holding secrets: root's, mode 0600),
   the agent's installer and its systemd unit.
3. Enables the unit. Before each start the unit installs the agent if it is not there
   yet: the package the control plane serves, refused unless its sha256 is the expected
   one and the installed code has the checksum the orchestrator expects. The agent then
   pulls the vLLM image (its setup step: the instance shows `installing`) and runs and
   supervises vLLM in Docker on the GPUs, its model cache on the data volume.

Every value reaches a shell or an argument list through `shlex`, and the document is
written by PyYAML: no model name, flag or URL can become code. The engine key reaches
vLLM as `VLLM_API_KEY` through the agent's environment (vLLM reads it like `--api-key`),
so it never shows on a command line; the HF token likewise, and only when given.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import yaml  # type: ignore[import-untyped]  # types-PyYAML is not a dependency

# A pinned release, never `latest`: every VM of a deployment runs the same engine.
# Configurable per model launch (EngineLaunch.image).
DEFAULT_VLLM_IMAGE = "vllm/vllm-openai:v0.13.0"
DATA_LABEL = "inventiv-models"
MODELS_MOUNT = "/mnt/inventiv-models"
ENGINE_CONTAINER = "inventiv-engine"
AGENT_HOME = "/opt/inventiv-worker"
AGENT_STATE_DIR = "/var/lib/inventiv-worker"
AGENT_ENV_FILE = "/etc/inventiv/agent.env"
AGENT_INSTALL_ENV_FILE = "/etc/inventiv/agent-install.env"
INSTALLER = "/usr/local/lib/inventiv/install-agent"
AGENT_UNIT = "inventiv-worker.service"
# Inside the engine's container: where the data volume is, and the HF cache on it.
CONTAINER_MODELS = "/models"

# Flags the template sets itself. A model's settings may not name them, nor abbreviate
# them (vLLM's parser takes prefixes and `_` for `-`), so no settings row can open or
# move the engine; they also come before the template's own, which win anyway.
# fmt: off
OWNED_ENGINE_FLAGS = frozenset({
    "--api-key", "--config", "--host", "--port", "--model", "--served-model-name",
    "--tensor-parallel-size", "--max-model-len", "--download-dir", "--uds",
})
# fmt: on
OWNED_SHORT_FLAGS = frozenset({"-tp"})
_SHA256 = re.compile(r"[0-9a-f]{64}")
_WHEEL = re.compile(r"[A-Za-z0-9_.+-]+\.whl")
_SETTING_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class EngineLaunch:
    """How vLLM runs on the VM."""

    model: str  # what vLLM loads (a Hugging Face repo id)
    served_name: str  # the id it answers to: the catalog's model id
    gpu_count: int  # the instance type's GPUs: the tensor parallel size
    max_model_len: int
    engine_key: str
    hf_token: str | None = None  # only for models that need one
    extra_args: tuple[str, ...] = ()  # from the model's settings (engine_args_to_flags)
    image: str = DEFAULT_VLLM_IMAGE
    port: int = 8000

    def __post_init__(self) -> None:
        _text("model", self.model)
        _text("served_name", self.served_name)
        _secret("engine_key", self.engine_key)
        if self.hf_token is not None:
            _secret("hf_token", self.hf_token)
        if self.gpu_count < 1:
            raise ValueError("gpu_count must be at least 1 (a GPU instance type)")
        if self.max_model_len < 1:
            raise ValueError("max_model_len must be positive")
        _port("engine port", self.port)
        if not self.image or any(c.isspace() for c in self.image) or self.image.startswith("-"):
            raise ValueError("image must be an image reference such as repo/name:tag")
        for arg in self.extra_args:
            _text("extra engine argument", arg)
            name = arg.split("=", 1)[0].replace("_", "-")
            abbreviates = len(name) > 2 and any(f.startswith(name) for f in OWNED_ENGINE_FLAGS)
            if name in OWNED_SHORT_FLAGS or (name.startswith("--") and abbreviates):
                raise ValueError(f"engine argument {name[:40]} is set by the platform")


@dataclass(frozen=True)
class AgentDelivery:
    """The worker agent the VM installs: a wheel the control plane serves."""

    package_url: str  # its path ends with the wheel's file name
    package_sha256: str  # of the wheel: the download is refused otherwise
    code_checksum: str  # the agent code's checksum the orchestrator expects

    def __post_init__(self) -> None:
        parts = urlsplit(self.package_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("agent package_url must be an http(s) URL")
        _text("agent package_url", self.package_url)
        if not _WHEEL.fullmatch(PurePosixPath(parts.path).name):
            raise ValueError("agent package_url must end with the wheel's file name")
        for name in ("package_sha256", "code_checksum"):
            if not _SHA256.fullmatch(getattr(self, name)):
                raise ValueError(f"agent {name} must be 64 lowercase hex digits")

    @property
    def file_name(self) -> str:
        return PurePosixPath(urlsplit(self.package_url).path).name


@dataclass(frozen=True)
class VmBoot:
    """Everything one instance's VM needs to boot into a registered worker."""

    instance_id: str
    control_plane_url: str  # public: the VM reaches it over the internet
    bootstrap_secret: str
    engine: EngineLaunch
    agent: AgentDelivery
    data_device: str  # the block volume for the model cache, e.g. /dev/sdb
    worker_id: str | None = None  # defaults to the instance id
    agent_port: int = 8080
    heartbeat_interval_s: float = 10.0

    def __post_init__(self) -> None:
        _text("instance_id", self.instance_id)
        if self.worker_id is not None:
            _text("worker_id", self.worker_id)
        _secret("bootstrap_secret", self.bootstrap_secret)
        parts = urlsplit(self.control_plane_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("control_plane_url must be an http(s) URL")
        _text("control_plane_url", self.control_plane_url)
        if not self.data_device.startswith("/dev/") or _CONTROL.search(self.data_device):
            raise ValueError("data_device must be a device path under /dev/")
        _port("agent port", self.agent_port)
        if self.agent_port == self.engine.port:
            raise ValueError("the agent and the engine need different ports")
        if not self.heartbeat_interval_s > 0:
            raise ValueError("heartbeat_interval_s must be positive")


def _text(name: str, value: str) -> None:
    if not value:
        raise ValueError(f"{name} must not be empty")
    if "\x00" in value:  # no environment variable or argument can hold NUL
        raise ValueError(f"{name} must not contain NUL")


def _secret(name: str, value: str) -> None:
    # Secrets are ours (generated tokens) or an HF token: one printable line each.
    _text(name, value)
    if _CONTROL.search(value) or value != value.strip():
        raise ValueError(f"{name} must be one line without control characters or edge spaces")


def _port(name: str, value: int) -> None:
    if not 1 <= value <= 65535:
        raise ValueError(f"{name} must be between 1 and 65535")


def engine_args_to_flags(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """A model's `engine_args` as vLLM flags: `{"enable_prefix_caching": true,
    "gpu-memory-utilization": 0.9}` gives `--enable-prefix-caching
    --gpu-memory-utilization 0.9`; false or null leaves a flag out."""
    flags: list[str] = []
    for key, value in settings.items():
        if not _SETTING_NAME.fullmatch(key):
            raise ValueError(f"engine setting {key[:60]!r} is not a flag name")
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            flags.append(flag)
        elif isinstance(value, dict | list):
            flags += [flag, json.dumps(value, separators=(",", ":"))]  # vLLM's JSON flags
        else:
            flags += [flag, str(value)]
    return tuple(flags)


def engine_command(engine: EngineLaunch) -> list[str]:
    """The agent's ENGINE_COMMAND: vLLM in Docker, in the foreground, so the agent
    supervises it like any process (its SIGTERM reaches the container)."""
    forwarded = ["VLLM_API_KEY"] + (["HF_TOKEN"] if engine.hf_token else [])
    return [
        "docker",
        "run",
        "--rm",
        "--init",
        "--name",
        ENGINE_CONTAINER,
        "--gpus",
        "all",
        "--ipc",
        "host",
        # Host networking: the engine port is the VM's, guarded by the engine key.
        "--network",
        "host",
        "--volume",
        f"{MODELS_MOUNT}:{CONTAINER_MODELS}",
        "--env",
        f"HF_HOME={CONTAINER_MODELS}/huggingface",
        # Names without values: docker copies them from the agent's environment.
        *[arg for name in forwarded for arg in ("--env", name)],
        "--entrypoint",
        "vllm",
        engine.image,
        "serve",
        engine.model,
        *engine.extra_args,
        "--served-model-name",
        engine.served_name,
        "--host",
        "0.0.0.0",
        "--port",
        str(engine.port),
        "--tensor-parallel-size",
        str(engine.gpu_count),
        "--max-model-len",
        str(engine.max_model_len),
    ]


def engine_setup_command(engine: EngineLaunch) -> list[str]:
    """The agent's SETUP_COMMAND: drop an engine container a killed agent left behind,
    then pull the image (minutes, on the first boot: the instance's installing step)."""
    script = 'docker rm --force "$1" >/dev/null 2>&1 || true; exec docker pull --quiet "$2"'
    return ["/bin/sh", "-c", script, "prepare-engine", ENGINE_CONTAINER, engine.image]


def agent_environment(boot: VmBoot) -> dict[str, str]:
    """What the agent's process environment holds on the VM (secrets included)."""
    engine = boot.engine
    env = {
        "INSTANCE_ID": boot.instance_id,
        "WORKER_ID": boot.worker_id or boot.instance_id,
        "MODEL_ID": engine.served_name,
        "CONTROL_PLANE_URL": boot.control_plane_url,
        "WORKER_BOOTSTRAP_SECRET": boot.bootstrap_secret,
        "ENGINE_API_KEY": engine.engine_key,
        "ENGINE_COMMAND": shlex.join(engine_command(engine)),
        "ENGINE_URL": f"http://127.0.0.1:{engine.port}",
        "SETUP_COMMAND": shlex.join(engine_setup_command(engine)),
        "WORKER_HOST": "0.0.0.0",
        "WORKER_PORT": str(boot.agent_port),
        "WORKER_STATE_DIR": AGENT_STATE_DIR,
        "HEARTBEAT_INTERVAL_S": str(boot.heartbeat_interval_s),
    }
    if engine.hf_token:
        env["HF_TOKEN"] = engine.hf_token
    return env


def shell_env_file(values: Mapping[str, str], header: str) -> str:
    """`NAME='value'` lines a POSIX shell sources to the byte (newlines, quotes and
    `$(...)` included): single quotes leave everything inert."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    lines += [f"{name}={shlex.quote(value)}" for name, value in values.items()]
    return "\n".join(lines) + "\n"


INSTALLER_SCRIPT = """\
#!/bin/sh
# Installs the worker agent the control plane serves, and nothing else: the wheel must
# have the expected sha256, and the installed code the checksum the orchestrator
# expects. Runs before every start of the agent's unit; an agent already installed
# with that checksum is kept as it is, so a reboot installs nothing.
set -eu
. "${1:-/etc/inventiv/agent-install.env}"
current="$AGENT_HOME/venv"
checksum() {
    "$1/bin/python" -c 'from inventiv_worker.version import code_checksum as c; print(c())'
}
if [ -x "$current/bin/python" ] && [ "$(checksum "$current" 2>/dev/null)" = "$AGENT_CODE_CHECKSUM" ]
then
    exit 0
fi
mkdir -p "$AGENT_HOME"
work=$(mktemp -d "$AGENT_HOME/download.XXXXXX")
trap 'rm -rf "$work"' EXIT
archive="$work/$AGENT_PACKAGE_FILE"
curl --fail --silent --show-error --location --retry 5 --retry-delay 2 \\
    --output "$archive" "$AGENT_PACKAGE_URL"
if ! echo "$AGENT_PACKAGE_SHA256  $archive" | sha256sum --check --status; then
    echo "agent package refused: its sha256 is not the expected one" >&2
    exit 1
fi
# One directory per agent build (a venv cannot move); "venv" is switched atomically.
target="$AGENT_HOME/agent-$AGENT_CODE_CHECKSUM"
rm -rf "$target"
python=""
for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
        && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        python=$candidate
        break
    fi
done
if [ -z "$python" ] || ! "$python" -m venv "$target" >/dev/null 2>&1; then
    # Ubuntu 22.04 GPU images have Python 3.10 (the agent needs 3.11, a package away);
    # Debian and Ubuntu ship venv's pip in its own package.
    if [ -z "$python" ]; then python=python3.11; fi
    rm -rf "$target"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$python-venv"
    "$python" -m venv "$target"
fi
"$target/bin/pip" install --quiet --disable-pip-version-check "$archive[worker]"
if [ "$(checksum "$target")" != "$AGENT_CODE_CHECKSUM" ]; then
    echo "agent refused: its code checksum is not the one the orchestrator expects" >&2
    rm -rf "$target"
    exit 1
fi
ln -sfn "$target" "$AGENT_HOME/venv.next"
mv -T "$AGENT_HOME/venv.next" "$current"
"""


def agent_unit(boot: VmBoot) -> str:
    # The environment file is sourced by sh (not systemd's EnvironmentFile=, whose
    # quoting differs) so that every value arrives exactly as rendered.
    start = f"set -a && . {AGENT_ENV_FILE} && exec {AGENT_HOME}/venv/bin/inventiv-worker"
    return f"""\
[Unit]
Description=Inventiv worker agent (supervises the inference engine)
Wants=network-online.target docker.service
After=network-online.target docker.service
RequiresMountsFor={MODELS_MOUNT}
StartLimitIntervalSec=0

[Service]
Type=simple
ExecStartPre={INSTALLER} {AGENT_INSTALL_ENV_FILE}
ExecStart=/bin/sh -c {shlex.quote(start)}
Restart=always
RestartSec=5
# Installing the agent downloads its dependencies: give it time.
TimeoutStartSec=20min
# SIGTERM goes to the agent alone: it drains and stops the engine itself.
KillMode=mixed
TimeoutStopSec=90

[Install]
WantedBy=multi-user.target
"""


def render_user_data(boot: VmBoot) -> str:
    """The `#cloud-config` document for this instance's VM."""
    install_env = {
        "AGENT_HOME": AGENT_HOME,
        "AGENT_PACKAGE_URL": boot.agent.package_url,
        "AGENT_PACKAGE_FILE": boot.agent.file_name,
        "AGENT_PACKAGE_SHA256": boot.agent.package_sha256,
        "AGENT_CODE_CHECKSUM": boot.agent.code_checksum,
    }
    document: dict[str, Any] = {
        "fs_setup": [
            {
                "label": DATA_LABEL,
                "filesystem": "ext4",
                "device": boot.data_device,
                "partition": "none",
                "overwrite": False,  # a filesystem already there is kept, models and all
            }
        ],
        "mounts": [
            [f"LABEL={DATA_LABEL}", MODELS_MOUNT, "ext4", "defaults,nofail", "0", "2"],
        ],
        "write_files": [
            _file(
                AGENT_ENV_FILE,
                shell_env_file(
                    agent_environment(boot),
                    "The worker agent's environment, sourced by sh: holds secrets, root only.",
                ),
                "0600",
            ),
            _file(
                AGENT_INSTALL_ENV_FILE,
                shell_env_file(install_env, "Where the worker agent comes from (no secrets)."),
                "0644",
            ),
            _file(INSTALLER, INSTALLER_SCRIPT, "0755"),
            _file(f"/etc/systemd/system/{AGENT_UNIT}", agent_unit(boot), "0644"),
        ],
        "runcmd": [
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "--now", AGENT_UNIT],
        ],
    }
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=4096)
    return "#cloud-config\n" + body


def _file(path: str, content: str, permissions: str) -> dict[str, str]:
    return {"path": path, "owner": "root:root", "permissions": permissions, "content": content}


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, so the files read as they will be written."""


def _represent_str(dumper: Any, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)
