"""What one proxied request consumed, read from the engine's answer as it passes by.

A JSON answer carries its `usage`; a stream carries it in its chunks, which the gateway
asks for even when the client did not (every token is metered, even of a stream the
client walks away from) and then hides from the client. An `Exchange` gathers these
facts and turns them into the `Usage` record the meter writes.

`Usage` itself stays in metering.py: its fields are the columns the meter copies into
PostgreSQL, so the record and its writer change together; this module only fills it.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from inventiv_api.gateway.callers import Caller
from inventiv_api.gateway.metering import Usage
from inventiv_api.gateway.routing import Endpoint

# A chunk's `usage` object (vLLM nests one level: prompt_tokens_details), and the
# final chunk that carries only usage. Unescaped quotes cannot occur inside a JSON
# string, so neither can match generated text.
USAGE_OBJECT = re.compile(rb'"usage":\s*(\{(?:[^{}]|\{[^{}]*\})*\})')
FINAL_CHUNK = re.compile(rb'"choices":\s*\[\]')


@dataclass(frozen=True)
class HiddenUsage:
    """The usage the gateway asked a stream for on its own, to strip from what the
    client sees: the final usage chunk, the running usage on every chunk."""

    final: bool = False
    running: bool = False


def ask_stream_usage(body: dict[str, Any], raw: bytes) -> tuple[HiddenUsage, bytes]:
    """Ask the engine of a streamed request for its usage on every chunk (vLLM's
    continuous usage stats). Returns what the client did not ask for, to hide, and
    the body to send: re-encoded only if it had to change. Re-encoding cannot fail: the
    body passed validation.parse_body (JSON types only, finite numbers, at most
    MAX_DEPTH deep), and ASCII output escapes any text, lone surrogates included."""
    options = body.get("stream_options")
    options = options if isinstance(options, dict) else {}
    hidden = HiddenUsage(
        final=not options.get("include_usage"),
        running=not options.get("continuous_usage_stats"),
    )
    if hidden.final or hidden.running:
        body["stream_options"] = {**options, "include_usage": True, "continuous_usage_stats": True}
        raw = json.dumps(body).encode()
    return hidden, raw


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
    # Named from the start, so the client is told it (x-request-id) and the meter's row
    # can be found from what the client saw.
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # The usage record, once taken by the meter: one per exchange.
    record: Usage | None = None

    @property
    def request_id_header(self) -> tuple[bytes, bytes]:
        return (b"x-request-id", self.request_id.encode())

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
            request_id=self.request_id,
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
