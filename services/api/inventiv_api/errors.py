"""One JSON error shape for the REST API: {"error": {"code", "message", "details"?}}.

The OpenAI-compatible routes use OpenAI's own envelope instead (see the gateway).
An error never echoes what it refuses at length: what it quotes of the request (a
field's name, a value) is cut to a few dozen characters, and a 422 lists its first
errors only.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

log = logging.getLogger(__name__)

EXCERPT_CHARS = 64
MESSAGE_CHARS = 200
MAX_DETAILS = 20
# Quoted back as U+FFFD: NUL, and unpaired surrogates (which UTF-8 cannot encode).
_UNQUOTABLE = re.compile(r"[\x00\ud800-\udfff]")


class ApiError(Exception):
    """An expected failure with a status, a stable code and a human message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.details = details


def not_found(what: str = "resource") -> ApiError:
    # Also used for resources of other organizations: their existence is not revealed.
    return ApiError(404, "not_found", f"{what} not found")


def forbidden(message: str = "not allowed") -> ApiError:
    return ApiError(403, "forbidden", message)


def conflict(code: str, message: str) -> ApiError:
    return ApiError(409, code, message)


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """Part of a caller's input, short enough to quote in an error."""
    text = _UNQUOTABLE.sub("\ufffd", str(value))
    return text if len(text) <= limit else text[:limit] + "…"


def excerpts(values: list[str], most: int = 5) -> str:
    """A few of the caller's values, each cut short, for a message."""
    shown = ", ".join(excerpt(v) for v in values[:most])
    return shown + (f" (and {len(values) - most} more)" if len(values) > most else "")


def validation_details(errors: list[Any]) -> list[dict[str, Any]]:
    """pydantic's errors without the input they refused, their locations (which name
    the caller's own keys) and messages cut short, the first MAX_DETAILS of them."""
    details: list[dict[str, Any]] = [
        {
            "loc": [part if isinstance(part, int) else excerpt(part) for part in e.get("loc", ())],
            "msg": excerpt(e.get("msg", ""), MESSAGE_CHARS),
            "type": excerpt(e.get("type", "")),
        }
        for e in errors[:MAX_DETAILS]
    ]
    if len(errors) > MAX_DETAILS:
        details.append({"loc": [], "msg": f"{len(errors) - MAX_DETAILS} more", "type": "more"})
    return details


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def allowed_methods(request: Request) -> str:
    """Every method some route answers on the request's path, for a 405's `Allow`.

    Starlette names only the methods of the first route whose path matched, but one
    path often has a route per method (GET and POST /models): the header must list
    them all (RFC 9110, 15.5.6)."""
    methods: set[str] = set()
    # The effective routes, with the prefixes of included routers applied.
    for context in iter_route_contexts(request.app.routes):
        route = context.route
        if not isinstance(route, Route) or not route.methods:
            continue
        if route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details), exc.status, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        details = validation_details(errors)
        if any(e.get("type") == "json_invalid" for e in errors):
            # Not a field that breaks a rule: the body cannot be read at all.
            return JSONResponse(
                error_body("invalid_json", "the request body is not valid JSON", details), 400
            )
        return JSONResponse(
            error_body("validation_error", "the request is not valid", details), 422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse(error_body("internal_error", "internal error"), 500)
