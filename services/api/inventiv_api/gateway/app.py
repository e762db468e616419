"""The OpenAI-compatible endpoints, as plain ASGI in front of the api's FastAPI stack.

/v1/* is the hot path: a FastAPI route with its middleware and validation would cost
more than the rest of the proxying, so requests are handled here directly. Bodies are
passed through as received (re-encoded only when a stream must ask the engine for its
usage), responses are relayed piece by piece, and errors use OpenAI's envelope.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import or_, select
from sqlalchemy.exc import DBAPIError
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from inventiv_api.errors import ApiError
from inventiv_api.gateway.metering import Meter, Usage
from inventiv_api.gateway.routing import Endpoint, RouteTable
from inventiv_api.gateway.upstream import (
    ConnectFailed,
    UpstreamError,
    UpstreamPool,
    UpstreamResponse,
)
from inventiv_api.security.permissions import Permission
from inventiv_api.security.principal import Principal, check_cross_site, resolve_principal
from inventiv_api.security.ratelimit import RateLimiter
from inventiv_api.settings import ApiSettings
from inventiv_common.db.models import ApiKey, Model
from inventiv_common.web import resources_of

log = logging.getLogger(__name__)
ENDPOINTS = {"/v1/chat/completions", "/v1/completions", "/v1/embeddings"}
PRINCIPAL_TTL_S = 5.0
# How long past its TTL a cached caller is still served while PostgreSQL is away.
STALE_PRINCIPAL_MAX_S = 600.0
# What PostgreSQL being away looks like from here: refused or dropped connections.
DATABASE_DOWN = (DBAPIError, OSError, TimeoutError)
MAX_CACHED_PRINCIPALS = 10_000
RETRY_AFTER_S = 5
JSON = (b"content-type", b"application/json")


class GatewayError(Exception):
    """An answer in OpenAI's error envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        code: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.code, self.retry_after = status, kind, code, retry_after

    def body(self) -> bytes:
        error = {"message": str(self), "type": self.kind, "param": None, "code": self.code}
        return json.dumps({"error": error}).encode()


@dataclass(frozen=True)
class Caller:
    principal: Principal
    organization_id: uuid.UUID
    allowed_models: frozenset[str] | None  # None: every model of the organization
    requests_per_minute: int | None = None  # the API key's limits, if any
    tokens_per_minute: int | None = None


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
        # credential -> (caller, expiry, resolved at): a key costs a lookup every few
        # seconds, not per request; a revoked key stops working within PRINCIPAL_TTL_S.
        self._callers: dict[str, tuple[Caller, float, float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        state: GatewayState = scope["app"].state.gateway
        try:
            caller = await self._caller(scope)
            path, method = scope["path"], scope["method"]
            if path == "/v1/models" and method == "GET":
                await _respond(send, 200, self._models(state.routes, caller))
            elif path in ENDPOINTS and method == "POST":
                await self._proxy(state, scope, receive, send, caller)
            else:
                raise GatewayError(404, f"no route {method} {path}", code="not_found")
        except GatewayError as exc:
            headers = [(b"retry-after", b"%d" % exc.retry_after)] if exc.retry_after else []
            await _respond(send, exc.status, exc.body(), headers)

    # -- who is calling ---------------------------------------------------------
    async def _caller(self, scope: Scope) -> Caller:
        request = Request(scope)
        credential = request.headers.get("authorization") or request.cookies.get(
            self.settings.session_cookie_name, ""
        )
        cached = self._callers.get(credential)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            caller = cached[0]
        else:
            try:
                caller = await self._resolve(request)
            except DATABASE_DOWN as exc:
                # A caller seen lately keeps being served while PostgreSQL is away
                # (routes and metering do without it too), asking again once a
                # second; a new one must wait.
                if cached is None or now - cached[2] > STALE_PRINCIPAL_MAX_S:
                    raise _database_down(exc) from None
                caller = cached[0]
                self._callers[credential] = (caller, now + 1.0, cached[2])
            else:
                if len(self._callers) >= MAX_CACHED_PRINCIPALS:
                    self._callers.clear()
                self._callers[credential] = (caller, now + PRINCIPAL_TTL_S, now)
        try:
            check_cross_site(request, caller.principal, self.settings)
        except ApiError as exc:
            raise GatewayError(403, exc.message, kind="permission_error", code=exc.code) from None
        return caller

    async def _resolve(self, request: Request) -> Caller:
        async with resources_of(request).session_factory() as session:
            try:
                principal = await resolve_principal(request, session, self.settings)
            except ApiError as exc:
                raise GatewayError(
                    401, exc.message, kind="authentication_error", code="invalid_api_key"
                ) from None
            if principal is None:
                raise GatewayError(
                    401,
                    "authentication required: Authorization: Bearer <API key>",
                    kind="authentication_error",
                    code="invalid_api_key",
                )
            if principal.organization_id is None or not principal.can(Permission.models_read):
                raise GatewayError(
                    403, "select an organization workspace first", kind="permission_error"
                )
            if principal.api_key_id is None:
                return Caller(principal, principal.organization_id, None)
            allowed, rpm, tpm = (
                await session.execute(
                    select(
                        ApiKey.allowed_models,
                        ApiKey.requests_per_minute,
                        ApiKey.tokens_per_minute,
                    ).where(ApiKey.id == principal.api_key_id)
                )
            ).one()
        return Caller(
            principal, principal.organization_id, frozenset(allowed) if allowed else None, rpm, tpm
        )

    @staticmethod
    def _models(routes: RouteTable, caller: Caller) -> bytes:
        names = [
            name
            for name in routes.models(caller.organization_id)
            if caller.allowed_models is None or name in caller.allowed_models
        ]
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "inventiv"} for n in names]
        return json.dumps({"object": "list", "data": data}).encode()

    # -- proxying ---------------------------------------------------------------
    async def _proxy(
        self, state: GatewayState, scope: Scope, receive: Receive, send: Send, caller: Caller
    ) -> None:
        raw = await self._body(receive)
        try:
            body = json.loads(raw)
        except ValueError:
            raise GatewayError(400, "the body must be JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            raise GatewayError(400, "the body must be a JSON object with a `model` string")
        model = body["model"]
        if caller.allowed_models is not None and model not in caller.allowed_models:
            raise GatewayError(403, f"this API key may not use {model!r}", kind="permission_error")
        await self._within_limits(state.limiter, caller)
        hidden = HiddenUsage()
        if body.get("stream") and scope["path"] != "/v1/embeddings":
            options = body.get("stream_options")
            options = options if isinstance(options, dict) else {}
            # Every token is metered, even of a stream the client walks away from: ask
            # the engine for usage on every chunk (vLLM's continuous usage stats), and
            # hide from the client whatever it did not ask for.
            hidden = HiddenUsage(
                final=not options.get("include_usage"),
                running=not options.get("continuous_usage_stats"),
            )
            if hidden.final or hidden.running:
                body["stream_options"] = {
                    **options,
                    "include_usage": True,
                    "continuous_usage_stats": True,
                }
                raw = json.dumps(body).encode()
        routes = state.routes
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
            try:
                if response.header(b"content-type") == b"text/event-stream":
                    await self._relay_stream(response, receive, send, exchange)
                else:
                    payload = await response.read()
                    exchange.first_byte_at = time.monotonic()
                    exchange.take_usage(payload if response.status == 200 else b"")
                    if caller.tokens_per_minute:
                        # Counted before the answer leaves, so the caller's next request
                        # already sees them.
                        await self._count_tokens(state.limiter, caller, exchange.total_tokens)
                        exchange.tokens_counted = True
                    await _respond(send, response.status, payload)
            except UpstreamError as exc:
                exchange.broken = True
                raise GatewayError(502, f"the engine failed: {exc}", kind="api_error") from None
            finally:
                response.abort()  # a no-op once the response was read to its end
                endpoint.in_flight -= 1
                routes.report(endpoint, ok=not exchange.broken and exchange.status_code < 500)
                usage = exchange.usage(caller, endpoint, scope["path"], bool(body.get("stream")))
                state.meter.record(usage)
                if caller.tokens_per_minute and not exchange.tokens_counted:
                    await self._count_tokens(state.limiter, caller, usage.total_tokens)
            return
        if tried:
            raise GatewayError(
                503,
                f"no instance of {model!r} could be reached",
                kind="api_error",
                code="no_ready_worker",
                retry_after=RETRY_AFTER_S,
            )
        raise await self._no_route(routes, caller, model)

    @staticmethod
    async def _within_limits(limiter: RateLimiter, caller: Caller) -> None:
        """The key's requests and tokens per minute, counted in Redis across replicas.
        If Redis is unreachable the request goes through (and is logged)."""
        key_id = caller.principal.api_key_id
        try:
            if caller.requests_per_minute:
                verdict = await limiter.hit(f"key-rpm:{key_id}", caller.requests_per_minute, 60)
                if not verdict.allowed:
                    raise _rate_limited("requests", verdict.retry_after_s)
            if caller.tokens_per_minute:
                verdict = await limiter.peek(f"key-tpm:{key_id}", caller.tokens_per_minute)
                if not verdict.allowed:
                    raise _rate_limited("tokens", verdict.retry_after_s)
        except RedisError as exc:
            log.warning("rate limits not checked: Redis unreachable", extra={"error": str(exc)})

    @staticmethod
    async def _count_tokens(limiter: RateLimiter, caller: Caller, tokens: int) -> None:
        try:
            await limiter.add(f"key-tpm:{caller.principal.api_key_id}", tokens, 60)
        except RedisError as exc:
            log.warning("tokens not counted: Redis unreachable", extra={"error": str(exc)})

    @staticmethod
    async def _no_route(routes: RouteTable, caller: Caller, model: str) -> GatewayError:
        """Unknown to the workspace (404), or known with nothing ready to serve it (503)."""
        try:
            known = await Gateway._known_model(routes, caller, model)
        except DATABASE_DOWN as exc:
            return _database_down(exc)
        if known is None:
            return GatewayError(404, f"the model {model!r} does not exist", code="model_not_found")
        return GatewayError(
            503,
            f"no ready instance serves {model!r} yet",
            kind="api_error",
            code="no_ready_worker",
            retry_after=RETRY_AFTER_S,
        )

    @staticmethod
    async def _known_model(routes: RouteTable, caller: Caller, model: str) -> uuid.UUID | None:
        async with routes.session_factory() as session:
            return await session.scalar(
                select(Model.id).where(
                    Model.model_id == model,
                    Model.is_active.is_(True),
                    or_(
                        Model.organization_id.is_(None),
                        Model.organization_id == caller.organization_id,
                    ),
                )
            )

    async def _relay_stream(
        self,
        response: UpstreamResponse,
        receive: Receive,
        send: Send,
        exchange: Exchange,
    ) -> None:
        """Relay an event stream as it arrives. If the engine breaks it off, the client
        sees it end early (its head is already sent)."""
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        gone = False

        async def watch() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            # Stop the engine, but keep reading what it already wrote: those tokens
            # were produced and are metered.
            gone = exchange.client_closed = True
            response.hang_up()

        watcher = asyncio.create_task(watch())
        pending = b""
        try:
            async for piece in response.iter_body():
                pending += piece
                # Relay whole events as soon as they are complete.
                cut = pending.rfind(b"\n\n")
                if cut < 0:
                    continue
                events, pending = pending[: cut + 2], pending[cut + 2 :]
                events = exchange.take_stream_events(events)
                if events and not gone:
                    await send({"type": "http.response.body", "body": events, "more_body": True})
        except UpstreamError:
            if gone:
                return
            exchange.broken = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        finally:
            watcher.cancel()
        if not gone:
            await send({"type": "http.response.body", "body": pending, "more_body": False})

    async def _body(self, receive: Receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise GatewayError(400, "the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.settings.max_body_bytes:
                raise GatewayError(413, "the body is too large", code="body_too_large")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)


@dataclass(frozen=True)
class HiddenUsage:
    """The usage the gateway asked a stream for on its own, to strip from what the
    client sees: the final usage chunk, the running usage on every chunk."""

    final: bool = False
    running: bool = False


# A chunk's `usage` object (vLLM nests one level: prompt_tokens_details), and the
# final chunk that carries only usage. Unescaped quotes cannot occur inside a JSON
# string, so neither can match generated text.
USAGE_OBJECT = re.compile(rb'"usage":\s*(\{(?:[^{}]|\{[^{}]*\})*\})')
FINAL_CHUNK = re.compile(rb'"choices":\s*\[\]')


@dataclass
class Exchange:
    """What one proxied request came to: the facts its usage record is made of."""

    started: float
    status_code: int
    hidden: HiddenUsage = HiddenUsage()
    first_byte_at: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Content chunks relayed: the completion so far when an engine reports no usage.
    chunks: int = 0
    usage_seen: bool = False
    # The latest usage object of a stream, parsed once at the end.
    last_usage: bytes | None = None
    client_closed: bool = False
    broken: bool = False
    tokens_counted: bool = False  # against the key's tokens per minute

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def take_usage(self, payload: bytes) -> None:
        """Tokens from a JSON answer's `usage`."""
        try:
            answer = json.loads(payload) if payload else None
        except ValueError:
            answer = None
        if isinstance(answer, dict):
            self._take(answer.get("usage"))

    def _take(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.usage_seen = True
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.completion_tokens = int(usage.get("completion_tokens") or 0)

    def take_stream_events(self, events: bytes) -> bytes:
        """Count the chunks, keep the latest usage the engine reported, and return what
        the client gets: without the usage it did not ask for."""
        if self.first_byte_at is None:
            self.first_byte_at = time.monotonic()
        if b'"usage":' not in events:
            self.chunks += events.count(b"data: {")
            return events
        kept = []
        for event in events.split(b"\n\n"):
            if not event:
                continue
            found = USAGE_OBJECT.search(event)
            if found is None:
                self.chunks += event.startswith(b"data: {")
                kept.append(event + b"\n\n")
                continue
            self.last_usage = found.group(1)
            if FINAL_CHUNK.search(event):
                if self.hidden.final:
                    continue  # the extra chunk the client did not ask for
            else:
                self.chunks += 1
                if self.hidden.running:
                    event = event[: found.start(1)] + b"null" + event[found.end(1) :]
            kept.append(event + b"\n\n")
        return b"".join(kept)

    def usage(self, caller: Caller, endpoint: Endpoint, path: str, stream: bool) -> Usage:
        now = time.monotonic()
        if self.last_usage is not None:
            self.take_usage(b'{"usage":' + self.last_usage + b"}")
        completion = self.completion_tokens if self.usage_seen else self.chunks
        if self.client_closed:
            status = "client_closed"
        elif self.broken or self.status_code >= 400:
            status = "error"
        else:
            status = "success"
        return Usage(
            request_id=uuid.uuid4().hex,
            occurred_at=datetime.now(UTC),
            organization_id=caller.organization_id,
            user_id=caller.principal.user_id,
            api_key_id=caller.principal.api_key_id,
            instance_id=endpoint.instance_id,
            model_id=endpoint.model_id,
            model_name=endpoint.model_name,
            endpoint=path.removeprefix("/v1/"),
            stream=stream,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=completion,
            time_to_first_token_ms=(
                round((self.first_byte_at - self.started) * 1000) if self.first_byte_at else None
            ),
            latency_ms=round((now - self.started) * 1000),
            status_code=502 if self.broken else self.status_code,
            status=status,
        )


def _database_down(exc: BaseException) -> GatewayError:
    log.warning("gateway: PostgreSQL unreachable", extra={"error": str(exc)[:300]})
    return GatewayError(
        503,
        "the platform's database is unreachable; retry shortly",
        kind="api_error",
        code="service_unavailable",
        retry_after=RETRY_AFTER_S,
    )


def _rate_limited(what: str, retry_after_s: int) -> GatewayError:
    return GatewayError(
        429,
        f"this API key is over its {what} per minute; retry in {retry_after_s} s",
        kind="rate_limit_error",
        code="rate_limit_exceeded",
        retry_after=retry_after_s,
    )


async def _respond(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [JSON, (b"content-length", b"%d" % len(body)), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _operation(summary: str, *, body: bool) -> dict[str, Any]:
    errors = {
        "400": "malformed body",
        "401": "missing, bad or revoked credentials",
        "403": "the API key may not use this model",
        "404": "unknown model",
        "429": "over the API key's requests or tokens per minute (see Retry-After)",
        "502": "the engine failed",
        "503": "no ready instance serves the model (see Retry-After)",
    }
    operation: dict[str, Any] = {
        "tags": ["openai-compatible"],
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {
            "200": {"description": "the engine's answer, unchanged (JSON or SSE)"},
            **{code: {"description": text} for code, text in errors.items()},
        },
    }
    if body:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    return operation


# /v1/* is served outside FastAPI's routing, so its paths are added to the spec by hand.
OPENAPI_PATHS: dict[str, Any] = {
    "/v1/models": {"get": _operation("Models the caller can use now", body=False)},
    "/v1/chat/completions": {"post": _operation("Chat completion (JSON or SSE)", body=True)},
    "/v1/completions": {"post": _operation("Text completion (JSON or SSE)", body=True)},
    "/v1/embeddings": {"post": _operation("Embeddings", body=True)},
}
