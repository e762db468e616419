"""The worker agent's package, as GPU VMs download it from the control plane.

A VM installs the agent from a wheel of this distribution that the api serves
(`GET /internal/worker/agent/<file>`); its user data names the file and its sha256, so
the VM refuses anything else. The wheel is built from the tree the control plane runs
(so the agent code's checksum is the one the orchestrator expects): by `inventiv dev`
at start, by an image build in production; AGENT_PACKAGE names it (a .whl file, or a
folder holding one).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SERVED_UNDER = "/internal/worker/agent/"


@dataclass(frozen=True)
class AgentPackage:
    path: Path
    sha256: str

    @property
    def file_name(self) -> str:
        return self.path.name

    def url(self, control_plane_url: str) -> str:
        return control_plane_url.rstrip("/") + SERVED_UNDER + self.file_name


def find(setting: str | None) -> AgentPackage | None:
    """The package AGENT_PACKAGE names, or None when it names nothing usable."""
    if not setting:
        return None
    path = Path(setting)
    if path.is_dir():
        wheels = sorted(path.glob("*.whl"))
        if len(wheels) != 1:
            return None
        path = wheels[0]
    if path.suffix != ".whl" or not path.is_file():
        return None
    return _described(path.resolve(), path.stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _described(path: Path, _modified_ns: int) -> AgentPackage:
    # Cached per file and modification time: a rebuilt wheel is hashed again.
    return AgentPackage(path, hashlib.sha256(path.read_bytes()).hexdigest())


def source_tree() -> Path | None:
    """This distribution's source tree, when the code runs from one (an editable
    install, as in development and in images built from the repository)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "worker").is_dir() else None


def build(out_dir: Path) -> Path:
    """A wheel of the source tree into `out_dir` (emptied first), offline: the build
    backend of this environment, no index. Returns the wheel's path."""
    root = source_tree()
    if root is None:
        raise RuntimeError("no source tree to build the worker agent's package from")
    with tempfile.TemporaryDirectory(prefix="inventiv-agent-build-") as scratch:
        # A copy: a build writes beside its sources, and the tree may be read-only.
        source = Path(scratch) / "source"
        skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "node_modules")
        for folder in ("common", "services", "worker"):
            shutil.copytree(root / folder, source / folder, ignore=skip)
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(root / name, source / name)
        wheels = Path(scratch) / "wheels"
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check"),
                *("--no-deps", "--no-index", "--no-build-isolation", "--wheel-dir", str(wheels)),
                str(source),
            ],
            check=True,
            timeout=600,
            cwd=scratch,
        )
        (wheel,) = wheels.glob("*.whl")
        out_dir.mkdir(parents=True, exist_ok=True)
        for old in out_dir.glob("*.whl"):
            old.unlink()
        return Path(shutil.copy2(wheel, out_dir / wheel.name))
