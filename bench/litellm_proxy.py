"""The LiteLLM proxy the gateway benchmark compares against: one exact version, installed
by the benchmark itself into its own virtual environment, configured like ours.

Every package of that environment is pinned in litellm-constraints.txt beside this file;
the environment is rebuilt whenever that file changes, and the version actually installed
is read back from it, so the figure printed names the LiteLLM that was measured.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("BENCH_LITELLM_VENV", ROOT / ".bench" / "litellm"))
CONSTRAINTS = Path(__file__).with_name("litellm-constraints.txt")
MASTER_KEY = "sk-bench-master"
# Production logging, as LiteLLM's own production guide sets it: its loggers and
# uvicorn's at WARNING, hence no access log line per request. Our api runs with
# LOG_LEVEL=WARNING, and it never writes access logs.
LOG_LEVEL = "WARNING"


def pinned_version() -> str:
    found = re.search(r"^litellm==(\S+)$", CONSTRAINTS.read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"{CONSTRAINTS} pins no litellm version")
    return found.group(1)


def installed_version() -> str:
    return subprocess.run(
        [
            str(VENV / "bin" / "python"),
            "-c",
            "from importlib.metadata import version; print(version('litellm'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def ensure_installed() -> str:
    """The pinned LiteLLM proxy in its own environment; returns the version installed."""
    digest = hashlib.sha256(CONSTRAINTS.read_bytes()).hexdigest()[:12]
    stamp = VENV / f".installed-{digest}"
    if not stamp.exists():
        version = pinned_version()
        print(f"installing the LiteLLM proxy {version} into {VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run(
            [
                str(VENV / "bin" / "pip"),
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-c",
                str(CONSTRAINTS),
                f"litellm[proxy]=={version}",
            ],
            check=True,
        )
        stamp.touch()
    installed = installed_version()
    if installed != pinned_version():
        raise RuntimeError(f"{VENV} holds LiteLLM {installed}, not the pinned {pinned_version()}")
    return installed


def write_config(path: Path, *, model: str, engine_url: str, engine_key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "model_list:\n"
        f"  - model_name: {model}\n"
        "    litellm_params:\n"
        f"      model: openai/{model}\n"
        f"      api_base: {engine_url}/v1\n"
        f"      api_key: {engine_key}\n"
        "general_settings:\n"
        f"  master_key: {MASTER_KEY}\n"
    )


def command(config: Path, port: int) -> list[str]:
    return [
        str(VENV / "bin" / "litellm"),
        "--config",
        str(config),
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]


def environment() -> dict[str, str]:
    return {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download at start-up
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOG": LOG_LEVEL,
        "LITELLM_MODE": "PRODUCTION",  # no .env loaded from the working directory
    }
