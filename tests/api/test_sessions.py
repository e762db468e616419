"""Login, sessions, logout, password change, rate limits, cross-site protection."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx

from tests.api.conftest import ALLOWED_ORIGIN, PASSWORD, World, create_user, start_api


def _new_user(world: World) -> str:
    username = f"sess-{uuid.uuid4().hex[:8]}"
    create_user(world["owner"], username)
    return username


def test_login_sets_a_protected_cookie_and_me_describes_the_workspace(world: World) -> None:
    client = world.api.client()
    response = client.post(
        "/auth/login",
        json={"email": "admin@inventiv.local", "password": "admin-password-for-tests"},
    )
    assert response.status_code == 200
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    me = client.get("/auth/me").json()
    assert me["username"] == "admin" and me["is_platform_admin"] is True
    assert me["current_organization_id"] == str(world.org_a)
    assert me["current_organization_role"] == "owner"
    assert me["current_organization_slug"] == "inventiv-it"


def test_wrong_user_and_wrong_password_look_the_same(world: World) -> None:
    client = world.api.client()
    unknown = client.post(
        "/auth/login", json={"username": "nobody-" + uuid.uuid4().hex, "password": "x"}
    )
    wrong = client.post("/auth/login", json={"username": "admin", "password": "not-it"})
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()


def test_revoking_a_session_takes_effect_at_once(world: World) -> None:
    username = _new_user(world)
    first, second = world.api.login(username), world.api.login(username)
    sessions = first.get("/auth/sessions").json()
    assert len(sessions) == 2
    current = next(s for s in sessions if s["is_current"])
    other = next(s for s in sessions if not s["is_current"])
    assert current["ip_address"] == "127.0.0.1" and "python-httpx" in current["user_agent"]
    assert first.post(f"/auth/sessions/{other['id']}/revoke").status_code == 204
    assert second.get("/auth/me").status_code == 401
    assert first.get("/auth/me").status_code == 200
    # Another user's session id is simply not found.
    assert world["user"].post(f"/auth/sessions/{current['id']}/revoke").status_code == 404


def test_logout_kills_the_token_even_if_replayed(world: World) -> None:
    client = world.api.login(_new_user(world))
    token = client.cookies.get("inventiv_session")
    assert client.post("/auth/logout").status_code == 204
    replay = world.api.client()
    replay.cookies.set("inventiv_session", token)
    assert replay.get("/auth/me").status_code == 401
    bearer = world.api.client(headers={"Authorization": f"Bearer {token}"})
    assert bearer.get("/auth/me").status_code == 401


def test_password_change_revokes_other_sessions(world: World) -> None:
    username = _new_user(world)
    current, other = world.api.login(username), world.api.login(username)
    wrong = current.put(
        "/auth/me/password", json={"old_password": "nope", "new_password": "x" * 16}
    )
    assert wrong.status_code == 400
    new_password = "a-brand-new-password"
    changed = current.put(
        "/auth/me/password", json={"old_password": PASSWORD, "new_password": new_password}
    )
    assert changed.status_code == 204
    assert current.get("/auth/me").status_code == 200
    assert other.get("/auth/me").status_code == 401
    assert (
        world.api.client()
        .post("/auth/login", json={"username": username, "password": PASSWORD})
        .status_code
        == 401
    )
    world.api.login(username, new_password)


def test_profile_update(world: World) -> None:
    client = world.api.login(_new_user(world))
    updated = client.put("/auth/me", json={"first_name": "Ada", "last_name": "Lovelace"})
    assert updated.status_code == 200
    assert (updated.json()["first_name"], updated.json()["last_name"]) == ("Ada", "Lovelace")
    taken = client.put("/auth/me", json={"email": "admin@inventiv.local"})
    assert taken.status_code == 409


def test_failed_logins_are_limited_per_account(world: World) -> None:
    username = _new_user(world)
    client = world.api.client()
    statuses = [
        client.post("/auth/login", json={"username": username, "password": "wrong"}).status_code
        for _ in range(11)
    ]
    assert statuses[:10] == [401] * 10
    assert statuses[10] == 429
    # Even the right password waits now: guessing cannot go on.
    blocked = client.post("/auth/login", json={"username": username, "password": PASSWORD})
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert blocked.json()["error"]["code"] == "rate_limited"


def test_logins_are_limited_per_ip(database_url: str, tmp_path: Path, world: World) -> None:
    strict = start_api(database_url, tmp_path / "api.log", LOGIN_RATE_LIMIT_PER_IP="3")
    try:
        client = strict.client()
        codes = [
            client.post("/auth/login", json={"username": "ghost", "password": "x"}).status_code
            for _ in range(4)
        ]
        assert codes == [401, 401, 401, 429]
    finally:
        strict.process.stop()


def test_cookie_writes_need_an_allowed_origin(world: World) -> None:
    cookie = world["user"].cookies.get("inventiv_session")
    body = {"name": "x"}

    def post(headers: dict[str, str]) -> httpx.Response:
        client = httpx.Client(base_url=world.api.base_url, headers=headers)
        client.cookies.set("inventiv_session", cookie)
        return client.post("/api_keys", json=body)

    assert post({}).status_code == 403
    assert post({"Origin": "https://evil.example"}).status_code == 403
    assert post({"Referer": "https://evil.example/page"}).status_code == 403
    allowed = post({"Origin": ALLOWED_ORIGIN})
    assert allowed.status_code == 201, allowed.text
    # Reads are not affected, and an API key needs no Origin at all.
    reader = httpx.Client(base_url=world.api.base_url)
    reader.cookies.set("inventiv_session", cookie)
    assert reader.get("/auth/me").status_code == 200
    key = allowed.json()["key"]
    with_key = httpx.Client(base_url=world.api.base_url, headers={"Authorization": f"Bearer {key}"})
    assert with_key.post("/api_keys", json=body).status_code == 201


def test_cross_site_login_is_refused(world: World) -> None:
    client = httpx.Client(base_url=world.api.base_url, headers={"Origin": "https://evil.example"})
    response = client.post(
        "/auth/login", json={"username": "admin", "password": "admin-password-for-tests"}
    )
    assert response.status_code == 403


def test_secure_cookie_when_configured(database_url: str, tmp_path: Path, world: World) -> None:
    secure = start_api(database_url, tmp_path / "api.log", COOKIE_SECURE="1")
    try:
        response = secure.client().post(
            "/auth/login", json={"username": "admin", "password": "admin-password-for-tests"}
        )
        assert "secure" in response.headers["set-cookie"].lower()
    finally:
        secure.process.stop()


def test_a_disabled_user_is_logged_out(world: World) -> None:
    username = _new_user(world)
    client = world.api.login(username)
    user_id = client.get("/auth/me").json()["id"]
    assert world["owner"].put(f"/users/{user_id}", json={"is_active": False}).status_code == 200
    assert client.get("/auth/me").status_code == 401
    assert (
        world.api.client()
        .post("/auth/login", json={"username": username, "password": PASSWORD})
        .status_code
        == 401
    )
