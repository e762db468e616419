"""What a process's /admin/status says: version, uptime, dependencies, its bus
subscription and each of its background loops."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from inventiv_common.dispatch import BusConsumer
from inventiv_common.loops import Loop, loops_status
from inventiv_common.version import version_info
from inventiv_common.web import ServiceResources, check_readiness


async def process_status(
    service: str,
    resources: ServiceResources,
    consumer: BusConsumer,
    loops: Mapping[str, Loop],
    **extra: Any,
) -> dict[str, Any]:
    return {
        "service": service,
        **version_info(),
        "uptime_s": round(time.time() - resources.started_at, 1),
        "dependencies": await check_readiness(resources),
        "bus": consumer.status(),
        "loops": loops_status(loops),
        **extra,
    }
