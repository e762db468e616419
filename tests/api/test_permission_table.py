"""The committed table of who may call what agrees with the live route declarations."""

from __future__ import annotations

from tests.api.permission_table import TABLE, committed_rows, difference, live_rows


def test_the_committed_table_agrees_with_the_routes() -> None:
    diff = difference()
    assert not diff, (
        f"who may call what changed; if that is intended, run "
        f"`.venv/bin/python -m tests.api.permission_table --write` and review {TABLE.name}:\n"
        f"{diff}"
    )


def test_the_table_covers_every_service_and_the_gateway() -> None:
    rows = committed_rows()
    assert {row.service for row in rows} == {"api", "orchestrator", "finops"}
    paths = {(row.service, row.path) for row in rows}
    assert {
        ("api", "/v1/chat/completions"),
        ("api", "/internal/worker/register"),
        ("orchestrator", "/internal/worker/heartbeat"),
        ("finops", "/admin/status"),
    } <= paths
    # One line per route and method: a duplicate would hide which one is meant.
    assert len({(r.service, r.method, r.path) for r in rows}) == len(rows) == len(live_rows())
