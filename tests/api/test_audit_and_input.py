"""The audit trail (append-only in the database itself) and bad input handling."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from tests.api.conftest import World


def test_actions_are_audited_with_who_and_where(world: World) -> None:
    world.api.client().post("/auth/login", json={"username": "admin", "password": "wrong"})
    key = world["manager"].post("/api_keys", json={"name": "audited"}).json()
    world["manager"].delete(f"/api_keys/{key['id']}")
    page = (
        world["manager"].get("/audit_logs", params={"resource_type": "api_key", "limit": 50}).json()
    )
    actions = {(e["action"], e["resource_id"]) for e in page["items"]}
    assert ("api_key.created", key["id"]) in actions and ("api_key.revoked", key["id"]) in actions
    entry = next(
        e
        for e in page["items"]
        if e["action"] == "api_key.created" and e["resource_id"] == key["id"]
    )
    assert entry["actor_user_id"] == str(world.users["manager"])
    assert entry["ip_address"] == "127.0.0.1"
    assert key["key"] not in str(page)  # secrets never reach the log
    logins = world["owner"].get("/audit_logs", params={"action": "auth.login"}).json()
    assert logins["total"] >= 1
    assert world["user"].get("/audit_logs").status_code == 403
    bad = world["owner"].get(
        "/audit_logs", params={"since": "2030-01-01T00:00:00Z", "until": "2020-01-01T00:00:00Z"}
    )
    assert bad.status_code == 400


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_logs SET action = 'tampered'",
        "DELETE FROM audit_logs",
        "TRUNCATE audit_logs",
    ],
)
def test_audit_rows_cannot_be_changed(statement: str, world: World, database_url: str) -> None:
    async def attempt() -> tuple[int, int]:
        conn = await asyncpg.connect(database_url)
        try:
            before = await conn.fetchval("SELECT count(*) FROM audit_logs")
            with pytest.raises(asyncpg.PostgresError, match="append-only"):
                await conn.execute(statement)
            return before, await conn.fetchval("SELECT count(*) FROM audit_logs")
        finally:
            await conn.close()

    before, after = asyncio.run(attempt())
    assert before > 0 and after == before


def test_bad_input_gets_clear_4xx_json(world: World) -> None:
    client = world["owner"]
    cases: list[tuple[httpx.Response, int]] = [
        (
            client.post(
                "/api_keys", content=b"{not json", headers={"Content-Type": "application/json"}
            ),
            400,
        ),
        (client.post("/api_keys", json=["a", "list"]), 422),
        (client.post("/api_keys", json={"name": "x", "unexpected": 1}), 422),
        (client.post("/api_keys", json={"name": ""}), 422),
        (client.post("/api_keys", json={"name": "x" * 201}), 422),
        (client.get("/instances/not-a-uuid"), 422),
        (client.get("/users", params={"limit": "many"}), 422),
        (
            client.post(
                "/users", json={"username": "bad name!", "email": "x@y", "password": "p" * 12}
            ),
            422,
        ),
        (
            client.post(
                "/users", json={"username": "short-pw", "email": "x@y", "password": "short"}
            ),
            422,
        ),
        (
            client.put(
                "/organizations/current/members/" + str(uuid.uuid4()), json={"role": "emperor"}
            ),
            422,
        ),
        (client.post("/organizations/current/invitations", json={"email": "not-an-email"}), 422),
        (
            client.post(
                "/api_keys",
                content=b"x" * (2 * 1024 * 1024),
                headers={"Content-Type": "application/json"},
            ),
            413,
        ),
        (client.get("/no/such/route"), 404),
        (client.patch("/api_keys"), 405),
    ]
    for response, status in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert "error" in response.json() and response.json()["error"]["message"]


def test_oversized_chunked_body_is_refused(world: World) -> None:
    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(40):
            yield b"x" * 65536

    response = world["owner"].post(
        "/api_keys", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
