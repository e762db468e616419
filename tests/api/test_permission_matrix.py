"""Every api route, every actor: real requests get what the committed table says.

The expectations come from permissions.expected.txt (reviewed and committed), never
from the routes' own declarations: a route whose dependency is weakened, or a role
given a permission, fails here as well as in test_permission_table.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from inventiv_api.security.permissions import Permission, Role
from tests.api.conftest import World
from tests.api.permission_table import Row, committed_rows


@dataclass(frozen=True)
class RouteCase:
    method: str
    path: str
    who: str
    permission: Permission | None
    roles: frozenset[Role]

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _case(row: Row) -> RouteCase:
    return RouteCase(row.method, row.path, row.who, row.permission, row.roles)


ROUTES = [_case(row) for row in committed_rows() if row.service == "api"]
# An API key of the owner, beside the sessions: keys act with their creator's role but
# never administer the platform.
ACTORS = ("anonymous", "outsider", "user", "manager", "admin", "owner", "other_owner", "key")
ACTOR_ROLES = {
    "user": Role.user,
    "manager": Role.manager,
    "admin": Role.admin,
    "owner": Role.owner,
    "other_owner": Role.owner,
    "key": Role.owner,
}
# Routes whose success would end the actor's membership: their allowed cases are
# covered by dedicated tests rather than run against the shared actors.
CONSUMING = {("POST", "/organizations/current/leave")}
STREAMS = {"/events/instances"}


def expected_denial(actor: str, case: RouteCase) -> int | None:
    """The status the table says this actor is refused with; None when it may call."""
    kind = case.who.split()
    if case.who == "anonymous":
        return None
    if kind[0] == "worker":
        return 401  # no session or API key is a worker's secret
    if actor == "anonymous":
        return 401
    if case.who == "session|api-key":
        return None
    if kind[1] == "platform-admin":
        return None if actor == "owner" else 403  # the owner is also the platform admin
    assert kind[1] == "member", case.who
    role = ACTOR_ROLES.get(actor)  # the outsider is in its Personal workspace: no role
    return None if role in case.roles else 403


def fill(path: str) -> str:
    values = {"provider": "scaleway", "token": "inv_" + uuid.uuid4().hex}
    parts = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            parts.append(values.get(part[1:-1], str(uuid.uuid4())))
        else:
            parts.append(part)
    return "/".join(parts)


@pytest.fixture(scope="module")
def key_client(world: World) -> Iterator[httpx.Client]:
    created = world["owner"].post("/api_keys", json={"name": f"matrix-{uuid.uuid4().hex[:6]}"})
    assert created.status_code == 201, created.text
    with world.api.client({"Authorization": f"Bearer {created.json()['key']}"}) as client:
        yield client
    world["owner"].delete(f"/api_keys/{created.json()['id']}")


def test_every_route_is_in_the_matrix() -> None:
    paths = {case.path for case in ROUTES}
    assert {"/auth/login", "/users/{user_id}", "/api_keys/{key_id}", "/audit_logs"} <= paths
    assert {"/v1/models", "/v1/chat/completions", "/internal/worker/register"} <= paths
    assert len(ROUTES) >= 40


@pytest.mark.parametrize("case", ROUTES, ids=str)
def test_route_enforces_its_permission(
    case: RouteCase, world: World, key_client: httpx.Client
) -> None:
    for actor in ACTORS:
        denial = expected_denial(actor, case)
        if denial is None and (case.method, case.path) in CONSUMING:
            continue
        if actor == "key":
            client = key_client
        elif actor == "anonymous":
            client = world.api.client()
        elif case.path == "/auth/logout":
            client = world.fresh_session(actor)  # the shared one must stay logged in
        else:
            client = world[actor]
        kwargs = {}
        if case.path.startswith("/internal/worker/"):
            kwargs = {"json": {"instance_id": str(uuid.uuid4())}}
        elif case.method in ("POST", "PUT"):
            kwargs = {"json": {}}
        if case.path in STREAMS:
            # An endless stream: the status and headers are the answer; then hang up.
            with client.stream(case.method, fill(case.path)) as response:
                pass
        else:
            response = client.request(case.method, fill(case.path), **kwargs)
        assert response.status_code < 500, (actor, response.text)
        if response.status_code != 204:
            assert response.headers["content-type"].startswith(("application/json", "text/")), actor
        if denial is None:
            assert response.status_code not in (401, 403), (actor, response.text)
        else:
            assert response.status_code == denial, (actor, response.status_code, response.text)
