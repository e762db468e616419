"""How a route answers for a command it sent to the orchestrator.

Every route sends commands one way: its service queues them with `publish_after_commit`
and the route ends with `commit_and_publish`, so a command never leaves for work that
was rolled back. Routes whose whole point is the command (reconcile, catalog sync)
answer 202 with what was sent and whether Redis took it.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

from inventiv_common.bus import Published


def command_accepted(published: Published) -> JSONResponse:
    (command,) = published
    return JSONResponse(
        {"command": command.type, "id": str(command.id), "published": published.delivered}, 202
    )
