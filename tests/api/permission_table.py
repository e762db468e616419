"""Who may call each HTTP route of the control plane, as a reviewed table.

`permissions.expected.txt` beside this file is committed and reviewed: a change of who
may do what is a changed line there. `test_permission_table.py` fails with a diff when
the live route declarations say anything else, and the permission matrix drives real
requests from the committed file, not from the routes' own declarations, so weakening
a route fails both.

    .venv/bin/python -m tests.api.permission_table          # show the diff; exit 1 if any
    .venv/bin/python -m tests.api.permission_table --write  # rewrite the file, then review it
"""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Route

from inventiv_api.security.permissions import (
    PLATFORM_ADMIN_PERMISSIONS,
    ROLE_PERMISSIONS,
    Permission,
    Role,
)
from inventiv_api.security.principal import declared_permission

TABLE = Path(__file__).with_name("permissions.expected.txt")
# The api's own documentation pages: plain routes, open to anyone.
DOC_ROUTES = {"/swagger-ui", "/swagger-ui/oauth2-redirect", "/api-docs/openapi.json"}
# /v1/* is answered in plain ASGI (no route declaration to read): callers.py lets in a
# session or an API key whose workspace role holds this permission.
GATEWAY_PERMISSION = Permission.models_read
# The orchestrator's worker endpoints (plain ASGI too) each check one worker secret.
WORKER_SECRETS = {"register": "worker bootstrap-secret", "heartbeat": "worker token"}
HEADER = """\
# Who may call each HTTP route of the control plane. Reviewed by hand: a changed line is a
# change of who may do what. Rewrite with
#     .venv/bin/python -m tests.api.permission_table --write
# and review the diff; tests/api/test_permission_table.py fails until this file agrees
# with the routes, and the permission matrix sends real requests from what it says.
#
# Who:
#   anonymous                           anyone, no credentials
#   session|api-key                     any signed-in session or API key, in any workspace
#   session platform-admin PERM         a platform admin's session (API keys are refused)
#   session|api-key member PERM ROLES   a session or API key whose role in its current
#                                       organization is one of ROLES (which hold PERM)
#   worker bootstrap-secret             an instance's bootstrap secret, checked by the
#   worker token                        orchestrator (the api relays /internal/worker/*)
# The orchestrator's and finops' ports are internal (the Compose network, loopback in
# dev): `anonymous` there means anyone who can reach that network.
#
# service      method  path                                                who
"""
LINE = re.compile(r"^(?P<service>\S+)\s+(?P<method>[A-Z]+)\s+(?P<path>/\S*)\s+(?P<who>\S.*?)\s*$")


@dataclass(frozen=True)
class Row:
    service: str
    method: str
    path: str
    who: str

    def line(self) -> str:
        return f"{self.service:<13}{self.method:<8}{self.path:<52}{self.who}"

    @property
    def permission(self) -> Permission | None:
        """The permission this row names (anonymous: public; signed in: authenticated)."""
        if self.who == "anonymous":
            return Permission.public
        if self.who == "session|api-key":
            return Permission.authenticated
        words = self.who.split()
        if len(words) > 2 and words[1] in ("platform-admin", "member"):
            return Permission(words[2])
        return None

    @property
    def roles(self) -> frozenset[Role]:
        """The organization roles a `member` row lets in."""
        words = self.who.split()
        if len(words) < 4 or words[1] != "member":
            return frozenset()
        return frozenset(Role(role) for role in words[3].split(","))


def who_for(permission: Permission) -> str:
    if permission is Permission.public:
        return "anonymous"
    if permission is Permission.authenticated:
        return "session|api-key"
    if permission in PLATFORM_ADMIN_PERMISSIONS:
        return f"session platform-admin {permission.value}"
    roles = ",".join(role.value for role in Role if permission in ROLE_PERMISSIONS[role])
    return f"session|api-key member {permission.value} {roles or '(none)'}"


def _declared(dependant: Dependant) -> list[Permission]:
    found: list[Permission] = []
    stack = list(dependant.dependencies)
    while stack:
        dep = stack.pop()
        permission = declared_permission(dep.call)
        if permission is not None:
            found.append(permission)
        stack.extend(dep.dependencies)
    return found


def _fastapi_rows(service: str, app: FastAPI, relayed: dict[str, str]) -> list[Row]:
    """One row per method of each route, from the permission its dependencies declare;
    a route the api relays to the orchestrator has the orchestrator's check."""
    rows = []
    for route in iter_route_contexts(app.routes):
        path = str(route.path)
        if isinstance(route.original_route, APIRoute):
            permissions = _declared(route.dependant)
            if len(permissions) != 1:
                raise AssertionError(f"{service} {path} declares {permissions or 'no permission'}")
            who = who_for(permissions[0])
            if permissions[0] is Permission.public and path in relayed:
                who = relayed[path]
        elif isinstance(route.original_route, Route) and path in DOC_ROUTES:
            who = "anonymous"
        else:
            raise AssertionError(f"{service} {path}: a route of no known kind")
        rows.extend(Row(service, m, path, who) for m in sorted((route.methods or set()) - {"HEAD"}))
    return rows


def _worker_rows(service: str) -> list[Row]:
    from inventiv_orchestrator.workers.router import HANDLERS

    rows = []
    for path in HANDLERS:
        name = path.rsplit("/", 1)[1]
        if name not in WORKER_SECRETS:
            raise AssertionError(f"{path}: say in WORKER_SECRETS which worker secret it takes")
        rows.append(Row(service, "POST", path, WORKER_SECRETS[name]))
    return rows


def live_rows() -> list[Row]:
    """The table as the code declares it today."""
    from inventiv_api.app import create_app as create_api
    from inventiv_api.gateway.asgi import METHODS as GATEWAY_METHODS
    from inventiv_api.settings import ApiSettings
    from inventiv_finops.app import create_app as create_finops
    from inventiv_finops.settings import FinopsSettings
    from inventiv_orchestrator.app import create_app as create_orchestrator
    from inventiv_orchestrator.settings import OrchestratorSettings

    # Building an app connects to nothing: these addresses are never reached.
    places = {"DATABASE_URL": "postgresql://unused@127.0.0.1/unused", "REDIS_URL": "redis://unused"}
    worker_rows = _worker_rows("orchestrator")
    relayed = {row.path: row.who for row in worker_rows}
    rows = _fastapi_rows("api", create_api(ApiSettings(**places)), relayed)
    rows += [Row("api", m, p, who_for(GATEWAY_PERMISSION)) for p, m in GATEWAY_METHODS.items()]
    rows += _fastapi_rows("orchestrator", create_orchestrator(OrchestratorSettings(**places)), {})
    rows += worker_rows
    rows += _fastapi_rows("finops", create_finops(FinopsSettings(**places)), {})
    order = {"api": 0, "orchestrator": 1, "finops": 2}
    return sorted(rows, key=lambda r: (order[r.service], r.path, r.method))


def render(rows: list[Row]) -> str:
    return HEADER + "".join(row.line() + "\n" for row in rows)


def parse(text: str) -> list[Row]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = LINE.match(line)
        if match is None:
            raise ValueError(f"{TABLE.name}:{number}: not `service METHOD /path who`: {line!r}")
        rows.append(Row(**match.groupdict()))
    return rows


def committed_rows() -> list[Row]:
    return parse(TABLE.read_text())


def difference() -> str:
    """A unified diff from the committed table to the live one ('' when they agree)."""
    committed = [row.line() for row in committed_rows()]
    live = [row.line() for row in live_rows()]
    return "\n".join(
        difflib.unified_diff(
            committed, live, f"{TABLE.name} (committed)", "the live routes", lineterm=""
        )
    )


def main(argv: list[str]) -> int:
    if argv == ["--write"]:
        TABLE.write_text(render(live_rows()))
        print(f"wrote {TABLE}: review the diff before committing")
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    diff = difference()
    print(diff or f"{TABLE.name} agrees with the routes")
    return 1 if diff else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
