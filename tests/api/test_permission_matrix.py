"""Every route declares one permission, and every route x actor gets what the map says.

The matrix is generated from the app's route table: a route added without a declared
permission, or whose enforcement disagrees with the permission map, fails here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Route

from inventiv_api.app import create_app
from inventiv_api.security.permissions import (
    PLATFORM_ADMIN_PERMISSIONS,
    ROLE_PERMISSIONS,
    Permission,
    Role,
)
from inventiv_api.security.principal import declared_permission
from inventiv_api.settings import ApiSettings
from tests.api.conftest import World

DOC_ROUTES = {"/swagger-ui", "/swagger-ui/oauth2-redirect", "/api-docs/openapi.json"}


@dataclass(frozen=True)
class RouteCase:
    method: str
    path: str
    permission: Permission

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _dependency_permissions(dependant: Dependant) -> list[Permission]:
    found: list[Permission] = []
    stack = list(dependant.dependencies)
    while stack:
        dep = stack.pop()
        permission = declared_permission(dep.call)
        if permission is not None:
            found.append(permission)
        stack.extend(dep.dependencies)
    return found


def route_cases() -> list[RouteCase]:
    app = create_app(ApiSettings(DATABASE_URL="postgresql://x@127.0.0.1/x", REDIS_URL="redis://x"))
    cases = []
    # The effective routes, with the prefixes of included routers applied.
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute):
            permissions = _dependency_permissions(route.dependant)
            assert len(permissions) == 1, f"{route.path} declares {permissions or 'no permission'}"
            for method in sorted((route.methods or set()) - {"HEAD"}):
                cases.append(RouteCase(method, str(route.path), permissions[0]))
        else:
            assert isinstance(route.original_route, Route) and route.path in DOC_ROUTES, route
    return cases


ROUTES = route_cases()
ACTORS = ("anonymous", "outsider", "user", "manager", "admin", "owner", "other_owner")
# Routes whose success would end the actor's membership: their allowed cases are
# covered by dedicated tests rather than run against the shared actors.
CONSUMING = {("POST", "/organizations/current/leave")}
STREAMS = {"/events/instances"}


def expected_denial(actor: str, permission: Permission) -> int | None:
    """401/403 when the map denies the actor, None when it allows."""
    if permission is Permission.public:
        return None
    if actor == "anonymous":
        return 401
    if permission is Permission.authenticated:
        return None
    if permission in PLATFORM_ADMIN_PERMISSIONS:
        return None if actor == "owner" else 403  # the owner is also the platform admin
    if actor == "outsider":
        return 403  # Personal workspace: no organization permissions
    role = Role.owner if actor == "other_owner" else Role(actor)
    return None if permission in ROLE_PERMISSIONS[role] else 403


def fill(path: str) -> str:
    values = {
        "provider": "scaleway",
        "token": "inv_" + uuid.uuid4().hex,
    }
    parts = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            parts.append(values.get(part[1:-1], str(uuid.uuid4())))
        else:
            parts.append(part)
    return "/".join(parts)


def test_every_route_is_in_the_matrix() -> None:
    paths = {case.path for case in ROUTES}
    assert {"/auth/login", "/users/{user_id}", "/api_keys/{key_id}", "/audit_logs"} <= paths
    assert len(ROUTES) >= 40


@pytest.mark.parametrize("case", ROUTES, ids=str)
def test_route_enforces_its_permission(case: RouteCase, world: World) -> None:
    for actor in ACTORS:
        denial = expected_denial(actor, case.permission)
        if denial is None and (case.method, case.path) in CONSUMING:
            continue
        client = world[actor] if actor != "anonymous" else world.api.client()
        if case.path == "/auth/logout" and actor != "anonymous":
            client = world.fresh_session(actor)  # the shared one must stay logged in
        kwargs = {"json": {}} if case.method in ("POST", "PUT") else {}
        if case.path in STREAMS:
            # An endless stream: the status and headers are the answer; then hang up.
            with client.stream(case.method, fill(case.path)) as response:
                pass
        else:
            response = client.request(case.method, fill(case.path), **kwargs)
        # The worker proxy answers 502 here: no orchestrator runs beside this api.
        upstream_down = case.path.startswith("/internal/worker/") and response.status_code == 502
        assert response.status_code < 500 or upstream_down, (actor, response.text)
        if response.status_code != 204:
            assert response.headers["content-type"].startswith(("application/json", "text/")), actor
        if denial is None:
            assert response.status_code not in (401, 403), (actor, response.text)
        else:
            assert response.status_code == denial, (actor, response.status_code, response.text)
