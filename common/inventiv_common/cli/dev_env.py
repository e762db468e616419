"""`.inventiv/dev.env`: where a running `inventiv dev` keeps its database and keys, so
the operator commands (`inventiv mock-runtimes`, `worker-attach`, `migrate`, ...) run
in another shell reach the same platform with nothing to export.

It holds addresses and file paths, never a secret's value: the embedded PostgreSQL
takes no password, and keys are named by the files that hold them. It exists only
while the platform runs.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path

FILE_NAME = "dev.env"
# What the operator commands read, when `inventiv dev` chose it.
SHARED = (
    "DATABASE_URL",
    "PROVIDER_SETTINGS_KEY_FILE",
    "WORKER_CONTROL_PLANE_URL",
    "WORKER_HEARTBEAT_INTERVAL_S",
    "MOCK_RUNTIME",
    "MOCK_DOCKER_IMAGE",
    "MOCK_ENGINE_FLAGS",
    "MOCK_BOOT_DELAY_S",
    "MOCK_INSTALL_DELAY_S",
    "MOCK_ENGINE_STARTUP_DELAY_S",
    # The platform's Scaleway account, for `inventiv scaleway check`: where it is and
    # the files holding its keys (a key given as a value stays in its shell).
    "SCALEWAY_API_URL",
    "SCALEWAY_ZONES",
    "SCALEWAY_PROJECT_ID",
    "SCALEWAY_ACCESS_KEY_FILE",
    "SCALEWAY_SECRET_KEY_FILE",
)


def home() -> Path:
    return Path(os.environ.get("INVENTIV_HOME", ".inventiv")).resolve()


def write(home_dir: Path, values: Mapping[str, str]) -> Path:
    path = home_dir / FILE_NAME
    lines = [f"{name}={shlex.quote(values[name])}" for name in SHARED if values.get(name)]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("# Written by `inventiv dev` while it runs; removed when it stops.\n")
        fh.write("\n".join(lines) + "\n")
    return path


def remove(home_dir: Path) -> None:
    (home_dir / FILE_NAME).unlink(missing_ok=True)


def load(home_dir: Path) -> dict[str, str]:
    """The values a running `inventiv dev` shared (none when it is not running)."""
    try:
        text = (home_dir / FILE_NAME).read_text()
    except OSError:
        return {}
    values: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, raw = line.partition("=")
        if sep and name in SHARED:
            parts = shlex.split(raw)
            values[name] = parts[0] if parts else ""
    return values


def apply_defaults(home_dir: Path) -> None:
    """Fill in what this shell does not set from the running dev platform."""
    for name, value in load(home_dir).items():
        if name.endswith("_FILE") and os.environ.get(name.removesuffix("_FILE")):
            continue  # this shell gives the value itself; both would be refused
        os.environ.setdefault(name, value)
