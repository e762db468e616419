"""How the gateway says no: OpenAI's error envelope, so an OpenAI client reports our
refusals (bad key, unknown model, over a limit, no ready instance) as it reports
OpenAI's own. Every refusal of the gateway is a `GatewayError`; the middleware turns it
into the answer, with Retry-After when there is something to wait for."""

from __future__ import annotations

import json
import logging

from sqlalchemy.exc import DBAPIError
from starlette.types import Send

log = logging.getLogger(__name__)
RETRY_AFTER_S = 5
# What PostgreSQL being away looks like from here: refused or dropped connections.
DATABASE_DOWN = (DBAPIError, OSError, TimeoutError)
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
        param: str | None = None,
        retry_after: int | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.code, self.param = status, kind, code, param
        self.retry_after = retry_after
        self.headers = headers or []

    def body(self) -> bytes:
        error = {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}
        return json.dumps({"error": error}).encode()

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        if self.retry_after:
            return [(b"retry-after", b"%d" % self.retry_after), *self.headers]
        return self.headers


def invalid(message: str, param: str | None = None, *, code: str | None = None) -> GatewayError:
    """A request the gateway will not pass on (400): `param` names the field at fault."""
    return GatewayError(400, message, param=param, code=code)


def database_down(exc: BaseException) -> GatewayError:
    log.warning("gateway: PostgreSQL unreachable", extra={"error": str(exc)[:300]})
    return GatewayError(
        503,
        "the platform's database is unreachable; retry shortly",
        kind="api_error",
        code="service_unavailable",
        retry_after=RETRY_AFTER_S,
    )


def rate_limited(what: str, retry_after_s: int) -> GatewayError:
    return GatewayError(
        429,
        f"this API key is over its {what} per minute; retry in {retry_after_s} s",
        kind="rate_limit_error",
        code="rate_limit_exceeded",
        retry_after=retry_after_s,
    )


async def respond(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    """A whole JSON answer: the gateway's own, or an engine's relayed unchanged."""
    headers = [JSON, (b"content-length", b"%d" % len(body)), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
