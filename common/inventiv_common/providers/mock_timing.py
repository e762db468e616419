"""How long each stage of a mock server takes, so every lifecycle state can be watched
(and tested): a real VM boots, installs, then loads a model; on this machine each
stage would otherwise pass too fast to see.

- boot: the server exists but its agent does not answer yet (`booting`). The agent's
  process sleeps first, then becomes the agent: same pid, tracked from the start.
- install: the agent answers but runs its setup command before it registers
  (`installing`), as a real host installs drivers or pulls images.
- engine startup: registered, the engine loads its model (`starting`).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

# argv: delay, then the command to become once it has passed.
BOOT_SHIM = (
    "import os, sys, time; time.sleep(float(sys.argv[1])); os.execv(sys.argv[2], sys.argv[2:])"
)


@dataclass(frozen=True)
class MockTimings:
    boot_s: float = 0.0
    install_s: float = 0.0
    engine_startup_s: float = 0.0

    def agent_command(self, python: str) -> list[str]:
        agent = [python, "-m", "inventiv_worker.agent"]
        if self.boot_s <= 0:
            return agent
        return [python, "-c", BOOT_SHIM, str(self.boot_s), *agent]

    def setup_env(self, python: str) -> dict[str, str]:
        """The agent's SETUP_COMMAND that takes the install time (none without one)."""
        if self.install_s <= 0:
            return {}
        return {
            "SETUP_COMMAND": shlex.join(
                [python, "-c", f"import time; time.sleep({self.install_s})"]
            )
        }


# No delay anywhere: the default (a frozen value, shared safely).
INSTANT = MockTimings()
