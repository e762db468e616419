"""Plain ASGI guards in front of the REST routes: bodies over the size limit (413,
refused before they are read) and text PostgreSQL cannot store (400)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inventiv_api.errors import error_body, excerpt


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": {
                    "code": "payload_too_large",
                    "message": f"request body exceeds {self.max_bytes} bytes",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._reject(send)
                    return
        received = 0
        exceeded = False
        forwarded_start = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal forwarded_start
            # Whatever the app answers to the interrupted read (frameworks turn it into
            # a 400) is replaced by our 413.
            if exceeded and not forwarded_start:
                return
            if message["type"] == "http.response.start":
                forwarded_start = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not forwarded_start:
            await self._reject(send)


# PostgreSQL's text and jsonb cannot hold NUL, and an unpaired UTF-16 surrogate (which
# JSON's \u escapes, and Python's JSON reader, let through) has no UTF-8 encoding.
UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
# A body holds such text only if it has one of these: a \u escape, a NUL byte (also
# in any UTF-16 or UTF-32 body), or 0xED, the first byte of a raw surrogate. Any other
# body is passed on unparsed (the worker heartbeats relayed to the orchestrator are).
_SUSPECT_BYTES = (b"\\u", b"\x00", b"\xed")
Location = list[str | int]


def _first_unstorable(document: Any) -> Location | None:
    """Where the first string (or key) of a parsed JSON document that PostgreSQL cannot
    store is, as a 422 would name it; None when there is none. Iterative: depth is
    bounded by the parser, not by our stack."""
    # Each entry carries a link to its parent's location, built into a list only when
    # something is found: copying paths at every node would cost depth x nodes.
    stack: list[tuple[Any, Any]] = [(document, ("body", None))]
    while stack:
        node, link = stack.pop()
        if isinstance(node, str):
            if UNSTORABLE.search(node):
                return _unlink(link)
        elif isinstance(node, dict):
            for key, value in node.items():
                if UNSTORABLE.search(key):
                    return _unlink((key, link))
                stack.append((value, (key, link)))
        elif isinstance(node, list):
            stack.extend((value, (index, link)) for index, value in enumerate(node))
    return None


def _unlink(link: Any) -> Location:
    parts: Location = []
    while link is not None:
        part, link = link
        parts.append(part)
    return parts[::-1]


def unstorable_in_body(body: bytes) -> Location | None:
    if not any(suspect in body for suspect in _SUSPECT_BYTES):
        return None
    try:
        # Parsed as Starlette parses it for the routes (UTF-8, -16 or -32, surrogates kept).
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON: it reaches no column as text; whoever reads it refuses it
    return _first_unstorable(document)


def unstorable_in_request_line(scope: Scope) -> Location | None:
    """In the (decoded) path, a query parameter's name or value, or a header."""
    if UNSTORABLE.search(scope["path"]):
        return ["path"]
    # Decoded as Starlette decodes it for the routes.
    for name, value in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True):
        if UNSTORABLE.search(name) or UNSTORABLE.search(value):
            return ["query", name]
    for name, value in scope["headers"]:
        # Header values are read as latin-1: only NUL can be a problem.
        if b"\x00" in value:
            return ["header", name.decode("latin-1")]
    return None


class StorableText:
    """Refuses, once for every REST route, a request carrying text PostgreSQL cannot
    store, wherever it is: path, query, headers, any string or key of a JSON body
    (also those relayed to the orchestrator). Without it such text reaches a query and
    answers 500, or poisons a batch written later. /v1/* never gets here: the gateway
    in front answers it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = unstorable_in_request_line(scope)
        if found is not None:
            await _refuse(send, found)
            return
        # The body is read here, in full (BodySizeLimit, outside, bounds it), and
        # handed on as one message; what the client sends later (a disconnect) follows.
        chunks: list[bytes] = []
        pending: Message | None = None
        while True:
            message = await receive()
            if message["type"] != "http.request":
                pending = message  # the client left: the app learns it from its receive
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if pending is None:
            found = unstorable_in_body(body)
            if found is not None:
                await _refuse(send, found)
                return
            pending = {"type": "http.request", "body": body, "more_body": False}

        async def replay() -> Message:
            nonlocal pending
            if pending is not None:
                message, pending = pending, None
                return message
            return await receive()

        await self.app(scope, replay, send)


async def _refuse(send: Send, loc: Location) -> None:
    where = {"path": "the path", "query": "a query parameter", "header": "a header"}.get(
        str(loc[0]), "the body"
    )
    detail = {
        "loc": [part if isinstance(part, int) else excerpt(part) for part in loc],
        "msg": "NUL characters and unpaired surrogates cannot be stored",
        "type": "unstorable_text",
    }
    body = json.dumps(
        error_body(
            "unstorable_text",
            f"{where} holds a NUL character or an unpaired surrogate, which text cannot hold",
            [detail],
        )
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
