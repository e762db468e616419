"""What the health loop decides from what it observed (nothing is written here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from inventiv_common.lifecycle import InstanceStatus as S
from inventiv_common.providers.base import ProviderServer
from inventiv_orchestrator.loops.health import HealthLoop, Move
from tests.orchestrator.contexts import loop_context

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SERVER = ProviderServer("srv-1", "i-1", "running", "local-1", "127.0.0.1", 1, 2)


def health_loop() -> HealthLoop:
    return HealthLoop(loop_context(WORKER_HEARTBEAT_INTERVAL_S=5.0))


def row(status: S, *, beat_age_s: float = 1.0, steps: list[str] | None = None) -> Any:
    return SimpleNamespace(
        status=status.value,
        created_at=NOW - timedelta(seconds=30),
        worker_last_heartbeat=NOW - timedelta(seconds=beat_age_s),
        worker_phase="ready",
        worker_status="healthy",
        # What the pass reads: steps only for instances coming up (None otherwise).
        progress_steps=None if steps is None else [{"step": s} for s in steps],
    )


def test_a_settled_instance_records_no_progress_step() -> None:
    loop = health_loop()
    assert loop.decide(row(S.ready), SERVER, True, True, NOW) == []
    # Beating again and ready: back to ready, with no step recorded on the way.
    assert loop.decide(row(S.unhealthy), SERVER, True, True, NOW) == [
        Move(S.ready, "worker recovered")
    ]


def test_an_instance_coming_up_records_each_step_once() -> None:
    loop = health_loop()
    moves = loop.decide(row(S.starting, steps=["provider_running"]), SERVER, True, True, NOW)
    assert moves == [
        Move(step="engine_started"),
        Move(step="model_loading"),
        Move(S.ready, "worker ready", step="ready"),
    ]


def test_stale_heartbeats_make_a_ready_instance_unhealthy() -> None:
    loop = health_loop()
    stale = row(S.ready, beat_age_s=60)
    assert loop.decide(stale, SERVER, True, True, NOW) == [Move(S.unhealthy, "heartbeats stopped")]
    gone = loop.decide(row(S.ready), None, False, False, NOW)
    assert gone == [Move(server_gone=True)]
