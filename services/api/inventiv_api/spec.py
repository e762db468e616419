"""The api's OpenAPI document says every answer a client can get, errors included.

FastAPI writes the successful answer of each route and a 422 in its own validation
shape. This module rewrites what it cannot know: every error the REST api answers, in
the one envelope they all use (`errors.py`), by what a route is (public or not, with a
body or not, a write or a read), plus the answers only some routes give. It also says
what the routes read that FastAPI cannot see: the worker routes' relayed bodies, the
finops reports' `from` and `to` (moments they parse themselves), `/metrics` in
Prometheus' text format, and that no string may hold NUL. The gateway's /v1/* paths
declare their own errors, in OpenAI's envelope (gateway/openapi.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from inventiv_api.security.permissions import Permission
from inventiv_api.security.principal import declared_permission
from inventiv_api.types import MOMENT_PATTERN

ERROR_SCHEMA = "Error"
ERROR_ENVELOPE = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "stable, machine-readable"},
                "message": {"type": "string", "description": "for a person"},
                "details": {"description": "what was wrong, field by field, when known"},
            },
        }
    },
}

# Every route: bad text anywhere in the request (path, query, headers, body), and a body
# too large (refused by its declared length before routing, so even where none is read).
ANY_ROUTE = {
    "400": "bad input: malformed JSON, or text PostgreSQL cannot store (NUL)",
    "413": "a request body over MAX_BODY_BYTES",
}
AUTHENTICATED = {
    "401": "not authenticated (no, expired or revoked session or API key)",
    "403": "not allowed: role, workspace, or a cookie write from a foreign Origin",
    "404": "not found, or not the caller's (another organization's ids look the same)",
}
WITH_INPUT = {"422": "invalid fields (`details` lists them)"}

WRITE = {"409": "conflicts with the current state"}
WRITE_METHODS = {"post", "put", "patch", "delete"}

# The worker routes relay their body to the orchestrator as it is (worker_proxy.py), so
# FastAPI cannot see it: what the orchestrator reads is said here. The worker's own
# secret (bootstrap secret, then worker token) goes in `Authorization: Bearer`.
WORKER_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/internal/worker/register"): {
        "type": "object",
        "required": ["instance_id"],
        "properties": {
            "instance_id": {"type": "string", "format": "uuid"},
            "agent_version": {"type": "string"},
            "agent_checksum": {"type": "string"},
        },
    },
    ("post", "/internal/worker/heartbeat"): {"type": "object"},
}

# Answers only these operations give.
SPECIFIC: dict[tuple[str, str], dict[str, str]] = {
    ("post", "/auth/login"): {
        "401": "wrong username, email or password",
        "429": "too many attempts from this address or for this account",
    },
    ("post", "/deployments"): {"402": "the organization's monthly budget cap is reached"},
    ("get", "/internal/worker/agent/{file_name}"): {
        "404": "not the agent package's file name, or no package is configured"
    },
    ("post", "/organizations/invitations/{token}/accept"): {
        "410": "the invitation was used, revoked or has expired"
    },
    ("post", "/internal/worker/register"): {
        "401": "no bearer secret, or not the instance's bootstrap secret",
        "409": "the instance is terminating, terminated or failed",
        "502": "the orchestrator could not be reached",
        "503": "the control plane's database is unavailable (with Retry-After)",
    },
    ("post", "/internal/worker/heartbeat"): {
        "401": "no bearer token, or an unknown or revoked worker token",
        "502": "the orchestrator could not be reached",
        "503": "the control plane's database is unavailable (with Retry-After)",
    },
    ("get", "/readyz"): {"503": "a dependency is not ready (the body names it)"},
}


def declare_errors(schema: dict[str, Any], public: set[tuple[str, str]]) -> dict[str, Any]:
    """Add the error answers to every REST operation of `schema` (in place); `public`
    holds the (method, path) of the operations anyone may call."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components[ERROR_SCHEMA] = ERROR_ENVELOPE
    ref = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}}
    for path, operations in schema.get("paths", {}).items():
        if path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            if (method, path) in WORKER_BODIES:
                body = {"schema": WORKER_BODIES[(method, path)]}
                operation["requestBody"] = {"required": True, "content": {"application/json": body}}
            for parameter in operation.get("parameters", ()):
                if path.startswith("/finops/") and parameter.get("name") in ("from", "to"):
                    _moment(parameter.get("schema", {}))
                _storable_text(parameter.get("schema", {}))
            errors = dict(ANY_ROUTE)
            if (method, path) not in public:
                errors |= AUTHENTICATED
            if operation.get("parameters") or "requestBody" in operation:
                errors |= WITH_INPUT
            if method in WRITE_METHODS:
                errors |= WRITE
            errors |= SPECIFIC.get((method, path), {})
            responses = operation["responses"]
            for status, description in errors.items():
                # FastAPI's own 422 describes a shape the api never sends: replaced.
                responses[status] = {"description": description, "content": ref}
    # Prometheus' text format, not JSON: FastAPI cannot tell from the route.
    metrics = schema.get("paths", {}).get("/metrics", {}).get("get")
    if metrics is not None:
        metrics["responses"]["200"]["content"] = {"text/plain": {"schema": {"type": "string"}}}
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    for component in components.values():
        _storable_text(component)
    return schema


# No NUL: PostgreSQL text cannot hold it, and every REST route refuses it (400
# `unstorable_text`, middleware.StorableText). Strings with a pattern of their own
# (names) or a format (emails, ids, moments) already exclude it.
_NO_NUL = "^[^\\u0000]*$"


def _moment(schema: dict[str, Any]) -> None:
    """The finops reports read `from` and `to` themselves (finops/ranges.py), as ISO 8601
    moments between 1970 and 9000: their string says `format: date-time`."""
    for option in schema.get("anyOf", [schema]):
        if option.get("type") == "string":
            option |= {"format": "date-time", "pattern": MOMENT_PATTERN}


def _storable_text(schema: Any) -> None:
    """Give every plain string of `schema` (recursively) the NUL-free pattern."""
    if isinstance(schema, list):
        for item in schema:
            _storable_text(item)
        return
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "string" and not {"pattern", "format", "enum", "const"} & set(schema):
        schema["pattern"] = _NO_NUL
    for value in schema.values():
        if isinstance(value, dict | list):
            _storable_text(value)


def public_operations(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route that declares `Permission.public`."""
    found = set()
    # The effective routes, with the prefixes of included routers applied.
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute):
            continue
        stack = list(route.dependant.dependencies)
        while stack:
            dependency = stack.pop()
            if declared_permission(dependency.call) is Permission.public:
                found |= {(m.lower(), str(route.path)) for m in route.methods or ()}
            stack.extend(dependency.dependencies)
    return found
