"""The agent's identity: version, build date and a SHA-256 of its own shipped code.

The checksum covers every .py file of this package (path and content, in a fixed
order), so the control plane can tell exactly which code a worker runs. Image builds
record it with the build date in `build_info.json` (`python -m inventiv_worker.version
--write`); at run time the code is hashed again, and a difference is reported.
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime
from functools import lru_cache
from importlib import metadata
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
BUILD_INFO = PACKAGE_DIR / "build_info.json"


def agent_version() -> str:
    try:
        return metadata.version("inventiv-agents")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


@lru_cache
def code_checksum() -> str:
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


@lru_cache
def build_info() -> dict[str, str | bool | None]:
    """Version, build date and checksum; `checksum_matches_build` is False when the code
    on disk differs from what the build recorded."""
    recorded: dict[str, str] = {}
    if BUILD_INFO.exists():
        recorded = json.loads(BUILD_INFO.read_text())
    checksum = code_checksum()
    return {
        "agent_version": agent_version(),
        "build_date": recorded.get("build_date"),
        "agent_checksum": checksum,
        "checksum_matches_build": recorded.get("agent_checksum", checksum) == checksum,
    }


def write_build_info() -> None:
    BUILD_INFO.write_text(
        json.dumps(
            {
                "agent_version": agent_version(),
                "build_date": datetime.now(UTC).isoformat(timespec="seconds"),
                "agent_checksum": code_checksum(),
            }
        )
    )


if __name__ == "__main__":
    if "--write" in sys.argv:
        write_build_info()
    print(json.dumps(build_info()))
