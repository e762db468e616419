"""`python gated_start.py GATE COMMAND...`: runs COMMAND (in this same process) once the
file GATE exists. A test holds an engine's start by removing the gate, and lets it go
by creating it: the engine is down exactly as long as the test needs, whatever the
machine's speed."""

from __future__ import annotations

import os
import sys
import time

gate, command = sys.argv[1], sys.argv[2:]
while not os.path.exists(gate):
    time.sleep(0.05)  # polls the gate; the test decides when it opens
os.execv(command[0], command)  # noqa: S606 - the command is the test's own
