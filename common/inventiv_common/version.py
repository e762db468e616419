"""The build identity every service reports on /version."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from importlib import metadata

_PROCESS_START = datetime.now(UTC)


def backend_version() -> str:
    try:
        return metadata.version("inventiv-agents")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


def build_time() -> str:
    # Images set BUILD_TIME at build; a source checkout has none, so the process
    # start time stands in and says so by its suffix.
    return os.environ.get("BUILD_TIME") or _PROCESS_START.isoformat() + " (process start)"


def version_info() -> dict[str, str]:
    return {"backend_version": backend_version(), "build_time": build_time()}
