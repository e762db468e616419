"""The checksum the control plane expects from worker agents.

Computed from the worker package as installed beside the control plane, with the same
algorithm the agent applies to itself (a test keeps the two in step), without
importing the worker: the control plane and the agent stay separate programs.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path


@lru_cache
def expected_agent_checksum() -> str | None:
    spec = importlib.util.find_spec("inventiv_worker")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()
