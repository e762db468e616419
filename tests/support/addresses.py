"""Places a test chose, for settings whose defaults name fixed ones.

The services' defaults suit `make dev`: the orchestrator on 127.0.0.1:8001, the api on
:8003, state under `.inventiv/` of the working directory. A test-started process left on
those would reach whatever runs there (a `make dev` beside the tests, another project,
another test run), so every test-started process is given places of the test's own.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import socket
import tempfile
from pathlib import Path


@functools.cache
def closed_url() -> str:
    """A loopback URL where nothing answers while this test run lasts.

    The port is bound by this process and never listened on: no other process can take
    it, and every connection to it is refused at once (no wait for a timeout)."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    atexit.register(holder.close)
    return f"http://127.0.0.1:{holder.getsockname()[1]}"


@functools.cache
def _run_directory() -> Path:
    path = Path(tempfile.mkdtemp(prefix="inventiv-tests-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def own_home() -> str:
    """A new, empty INVENTIV_HOME (meter journals, Mock runtimes, `dev.env`), removed
    when the test run ends."""
    return tempfile.mkdtemp(prefix="home-", dir=_run_directory())
