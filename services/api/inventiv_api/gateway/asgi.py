"""The OpenAI-compatible endpoints, as plain ASGI in front of the api's FastAPI stack.

/v1/* is the hot path: a FastAPI route with its middleware and validation would cost
more than the rest of the proxying, so requests are handled here directly. Bodies are
checked (validation.py), then passed through as received (re-encoded only when a stream
must ask the engine for its usage), responses are relayed piece by piece, and every
error, down to an unforeseen one, uses OpenAI's envelope.

This module is the request's path through the gateway, end to end: who calls
(callers.py), what it may ask (validation.py), within which limits (limits.py), to which
instance (routing.py), over which connection (upstream.py), and what it consumed
(usage.py, metering.py).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import time
import uuid
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from inventiv_api.gateway.callers import Caller, Callers
from inventiv_api.gateway.errors import (
    DATABASE_DOWN,
    JSON,
    RETRY_AFTER_S,
    GatewayError,
    database_down,
    respond,
)
from inventiv_api.gateway.limits import KeyLimits
from inventiv_api.gateway.metering import Meter, Usage
from inventiv_api.gateway.relay import read_body, relay_stream
from inventiv_api.gateway.routing import Endpoint, RouteTable
from inventiv_api.gateway.upstream import ConnectFailed, UpstreamError, UpstreamPool
from inventiv_api.gateway.usage import Exchange, HiddenUsage, ask_stream_usage
from inventiv_api.gateway.validation import check_fields, model_name, parse_body
from inventiv_api.security.ratelimit import RateLimiter
from inventiv_api.settings import ApiSettings

log = logging.getLogger(__name__)
ENDPOINTS = {"/v1/chat/completions", "/v1/completions", "/v1/embeddings"}
# The one method each path answers; another gets 405 with Allow.
METHODS = {"/v1/models": "GET", **dict.fromkeys(ENDPOINTS, "POST")}


@dataclass
class GatewayState:
    """What the gateway needs from the running service (made at start-up)."""

    routes: RouteTable
    pool: UpstreamPool
    meter: Meter
    limiter: RateLimiter


class Gateway:
    """Pure ASGI middleware: /v1/* is answered here, everything else passes on. Its
    route table and engine connections live on `app.state.gateway`, set at start-up."""

    def __init__(self, app: ASGIApp, *, settings: ApiSettings) -> None:
        self.app = app
        self.settings = settings
        self.callers = Callers(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        try:
            try:
                await self._serve(scope, receive, send)
            except GatewayError as exc:
                await respond(send, exc.status, exc.body(), exc.response_headers())
        except Exception:
            # A fault of ours, not of the request: said in OpenAI's envelope all the same
            # (unless the answer had begun, when all that is left is to end it).
            log.exception("gateway: unexpected failure", extra={"path": scope["path"][:200]})
            failure = GatewayError(
                500, "the gateway failed to handle this request", kind="api_error"
            )
            # If the answer had begun, this fails too, and the server closes the connection.
            with contextlib.suppress(Exception):
                await respond(send, 500, failure.body())

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        allowed = METHODS.get(path)
        if allowed is None:
            raise GatewayError(404, f"no route {path[:200]}", code="not_found")
        if method != allowed:
            raise GatewayError(
                405,
                f"{path} answers {allowed} only",
                code="method_not_allowed",
                headers=[(b"allow", allowed.encode())],
            )
        state: GatewayState = scope["app"].state.gateway
        caller = await self.callers.identify(scope)
        if allowed == "GET":
            await respond(send, 200, _models(state.routes, caller))
        else:
            await self._proxy(state, scope, receive, send, caller)

    async def _proxy(
        self, state: GatewayState, scope: Scope, receive: Receive, send: Send, caller: Caller
    ) -> None:
        _check_content_type(scope)
        raw = await read_body(receive, self.settings.max_body_bytes)
        body = parse_body(raw)
        model = model_name(body)
        if not caller.may_use(model):
            raise GatewayError(403, f"this API key may not use {model!r}", kind="permission_error")
        routes = state.routes
        # Bounded by the model's context, known from the route table: no query.
        check_fields(body, scope["path"], routes.context_length(caller.organization_id, model))
        limits = KeyLimits(state.limiter, caller)
        await limits.admit()
        hidden = HiddenUsage()
        stream = bool(body.get("stream"))
        if stream and scope["path"] != "/v1/embeddings":
            hidden, raw = ask_stream_usage(body, raw)
        started = time.monotonic()
        tried: tuple[uuid.UUID, ...] = ()
        # The least loaded instance; one retry elsewhere if it could not be reached
        # (nothing was delivered, so nothing can run twice).
        while len(tried) < 2:
            endpoint = routes.pick(caller.organization_id, model, exclude=tried)
            if endpoint is None:
                break
            endpoint.in_flight += 1
            try:
                response = await state.pool.send(
                    endpoint.host,
                    endpoint.port,
                    "POST",
                    scope["path"],
                    [(b"authorization", b"Bearer " + endpoint.engine_key.encode()), JSON],
                    raw,
                )
            except ConnectFailed:
                endpoint.in_flight -= 1
                routes.report(endpoint, ok=False)
                tried += (endpoint.instance_id,)
                continue
            except UpstreamError as exc:
                endpoint.in_flight -= 1
                routes.report(endpoint, ok=False)
                raise GatewayError(502, f"the engine failed: {exc}", kind="api_error") from None
            exchange = Exchange(started=started, status_code=response.status, hidden=hidden)
            meter = functools.partial(
                _meter_once, state.meter, exchange, caller, endpoint, scope["path"], stream
            )
            try:
                if response.header(b"content-type") == b"text/event-stream":
                    await relay_stream(response, receive, send, exchange, before_end=meter)
                else:
                    payload = await response.read()
                    exchange.first_byte_at = time.monotonic()
                    exchange.take_usage(payload if response.status == 200 else b"")
                    meter()
                    await limits.count_tokens(exchange.total_tokens)
                    await respond(send, response.status, payload, [exchange.request_id_header])
            except UpstreamError as exc:
                exchange.broken = True
                raise GatewayError(502, f"the engine failed: {exc}", kind="api_error") from None
            finally:
                response.abort()  # a no-op once the response was read to its end
                endpoint.in_flight -= 1
                routes.report(endpoint, ok=not exchange.broken and exchange.status_code < 500)
                usage = meter()  # an answer cut short, or a stream its client left
                await limits.count_tokens(usage.total_tokens)  # if not counted yet
            return
        if tried:
            raise GatewayError(
                503,
                f"no instance of {model!r} could be reached",
                kind="api_error",
                code="no_ready_worker",
                retry_after=RETRY_AFTER_S,
            )
        raise await _no_route(routes, caller, model)


def _meter_once(
    meter: Meter,
    exchange: Exchange,
    caller: Caller,
    endpoint: Endpoint,
    path: str,
    stream: bool,
) -> Usage:
    """The exchange's usage, taken by the meter the first time only. Called before the
    answer's last byte leaves, never after: a client that has an answer whole was
    metered, whenever the api dies (the meter journals what it takes at once)."""
    if exchange.record is None:
        exchange.record = exchange.usage(caller, endpoint, path, stream)
        meter.record(exchange.record)
    return exchange.record


def _check_content_type(scope: Scope) -> None:
    """A body declared as anything but JSON in UTF-8 is refused (415); one declared as
    nothing is read as JSON, as OpenAI's clients and most others send it."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            media, _, parameters = value.lower().partition(b";")
            charset = next(
                (
                    p.split(b"=", 1)[1].strip().strip(b'"')
                    for p in parameters.split(b";")
                    if p.strip().startswith(b"charset=")
                ),
                b"utf-8",
            )
            if media.strip() != b"application/json" or charset not in (b"utf-8", b"utf8"):
                raise GatewayError(
                    415,
                    "the body must be JSON in UTF-8, sent with Content-Type: application/json",
                    code="unsupported_media_type",
                )
            return


def _models(routes: RouteTable, caller: Caller) -> bytes:
    names = [name for name in routes.models(caller.organization_id) if caller.may_use(name)]
    data = [{"id": n, "object": "model", "created": 0, "owned_by": "inventiv"} for n in names]
    return json.dumps({"object": "list", "data": data}).encode()


async def _no_route(routes: RouteTable, caller: Caller, model: str) -> GatewayError:
    """Unknown to the workspace (404), or known with nothing ready to serve it (503)."""
    try:
        known = await routes.known_model(caller.organization_id, model)
    except DATABASE_DOWN as exc:
        return database_down(exc)
    if not known:
        return GatewayError(404, f"the model {model!r} does not exist", code="model_not_found")
    return GatewayError(
        503,
        f"no ready instance serves {model!r} yet",
        kind="api_error",
        code="no_ready_worker",
        retry_after=RETRY_AFTER_S,
    )
