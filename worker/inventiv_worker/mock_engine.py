"""`inventiv-mock-engine`: an OpenAI-compatible stand-in for vLLM, for dev, tests and
benchmarks.

Plain ASGI (no framework) so that it is never the bottleneck of a gateway benchmark.
Token counts are deterministic: the prompt counts one token per whitespace-separated
word (at least one), and a completion produces `max_tokens` tokens (16 by default),
one word per token. Like vLLM, it refuses a request whose prompt and `max_tokens` do not
fit its max model length, and it makes a completion's words as they are sent, so what
a request asks for never sits in memory at once. Embeddings are unit vectors derived
from a hash of the input. Serves vLLM's metric names on /metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import random
import struct
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

VOCABULARY = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dogs",
    "while",
    "models",
    "serve",
    "tokens",
    "from",
    "warm",
    "gpus",
    "and",
    "every",
    "request",
    "is",
    "counted",
    "exactly",
    "once",
    "by",
    "the",
    "gateway",
]
DEFAULT_MAX_TOKENS = 16
# A stream without a token delay lets other tasks run after this many tokens.
YIELD_EVERY_TOKENS = 64
# The seed catalog's context length of inventiv/mock-echo.
DEFAULT_MAX_MODEL_LEN = 8192
MAX_BODY = 4 * 1024 * 1024


@dataclass
class EngineOptions:
    model: str = "inventiv/mock-echo"
    api_key: str | None = None
    startup_delay_s: float = 0.0
    # A file whose existence ends the loading (after the delay): a test holds the
    # loading phase for exactly as long as it needs, whatever the machine's speed.
    loaded_when: str | None = None
    ttft_ms: float = 0.0
    token_delay_ms: float = 0.0
    error_rate: float = 0.0
    embedding_dim: int = 384
    seed: int = 0
    # Prompt and completion tokens of one request, at most (vLLM's --max-model-len).
    max_model_len: int = DEFAULT_MAX_MODEL_LEN


@dataclass
class Counters:
    running: int = 0
    waiting: int = 0
    prompt_tokens: int = 0
    generation_tokens: int = 0
    success: int = 0
    errors: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    # 200 answers whose last byte went out (/metrics: mock:responses_completed_total),
    # which tests compare with what a gateway metered.
    completed: int = 0


def count_tokens(text: str) -> int:
    return max(1, len(text.split()))


def _utf8(text: str) -> bytes:
    # A JSON body may carry a lone surrogate ("\ud800"): hashed as is, not refused.
    return text.encode("utf-8", "surrogatepass")


def iter_completion_words(prompt: str, n: int) -> Iterator[str]:
    """The `n` words of the completion of `prompt`, made one at a time."""
    start = int.from_bytes(hashlib.blake2b(_utf8(prompt), digest_size=4).digest(), "big")
    return (VOCABULARY[(start + i) % len(VOCABULARY)] for i in range(n))


def completion_words(prompt: str, n: int) -> list[str]:
    return list(iter_completion_words(prompt, n))


# Texts up to this long are cached: the cache never holds a client's megabytes.
CACHED_TEXT_CHARS = 1024


def embedding(text: str, dim: int) -> tuple[float, ...]:
    if len(text) <= CACHED_TEXT_CHARS:
        return _cached_embedding(text, dim)
    return _embedding(text, dim)


def _embedding(text: str, dim: int) -> tuple[float, ...]:
    raw = b""
    counter = 0
    while len(raw) < dim * 4:
        raw += hashlib.sha256(_utf8(f"{counter}:{text}")).digest()
        counter += 1
    values = [v / 2**31 - 1.0 for v in struct.unpack(f">{dim}I", raw[: dim * 4])]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return tuple(round(v / norm, 6) for v in values)


_cached_embedding = lru_cache(maxsize=4096)(_embedding)


def _chat_prompt(messages: Any) -> str:
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list")
    parts = []
    for message in messages:
        if not isinstance(message, dict):
            raise ValueError("each message must be an object")
        content = message.get("content")
        if isinstance(content, list):  # content parts
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        parts.append(str(content or ""))
    return " ".join(parts)


class MockEngine:
    def __init__(self, options: EngineOptions) -> None:
        self.options = options
        self.counters = Counters()
        self.loaded_at = time.monotonic() + options.startup_delay_s
        self.random = random.Random(options.seed)  # noqa: S311 - reproducible errors
        self.created = int(time.time())

    @property
    def loaded(self) -> bool:
        if time.monotonic() < self.loaded_at:
            return False
        if self.options.loaded_when is not None:
            if not os.path.exists(self.options.loaded_when):
                return False
            self.options.loaded_when = None  # loaded for good: no more looking
        return True

    # -- ASGI -------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/health":
            await self._json(
                send,
                200 if self.loaded else 503,
                {} if self.loaded else _err("loading", "model loading"),
            )
            return
        if path == "/metrics":
            await self._text(send, 200, self._metrics())
            return
        if path == "/version":
            await self._json(send, 200, {"version": "mock-0.1", "engine": "inventiv-mock-engine"})
            return
        if not path.startswith("/v1/"):
            await self._json(send, 404, _err("not_found", f"no route {path}"))
            return
        if not self._authorized(scope):
            await self._json(
                send,
                401,
                _err("invalid_api_key", "missing or wrong API key", "authentication_error"),
            )
            return
        if not self.loaded:
            await self._json(
                send, 503, _err("model_loading", "the model is still loading", "server_error")
            )
            return
        if path == "/v1/models" and method == "GET":
            await self._json(send, 200, self._models())
            return
        handlers = {
            "/v1/chat/completions": self._chat,
            "/v1/completions": self._completions,
            "/v1/embeddings": self._embeddings,
        }
        handler = handlers.get(path)
        if handler is None or method != "POST":
            await self._json(send, 404, _err("not_found", f"no route {method} {path}"))
            return
        try:
            body = json.loads(await _read_body(receive))
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
        except RecursionError:
            await self._json(send, 400, _err("invalid_request_error", "bad body: nested too deep"))
            return
        except ValueError as exc:  # UnicodeDecodeError included
            await self._json(send, 400, _err("invalid_request_error", f"bad body: {exc}"))
            return
        if body.get("model") != self.options.model:
            await self._json(
                send,
                404,
                _err(
                    "model_not_found", f"model {str(body.get('model'))[:100]!r} is not served here"
                ),
            )
            return
        if self.options.error_rate and self.random.random() < self.options.error_rate:
            self.counters.errors += 1
            await self._json(send, 500, _err("internal_error", "injected failure", "server_error"))
            return
        try:
            await handler(body, self._counting(send), receive)
        except ValueError as exc:
            await self._json(send, 400, _err("invalid_request_error", str(exc)))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _authorized(self, scope: Scope) -> bool:
        if not self.options.api_key:
            return True
        for name, value in scope["headers"]:
            if name == b"authorization":
                return bool(value == f"Bearer {self.options.api_key}".encode())
        return False

    def _counting(self, send: Send) -> Send:
        """`send`, counting a 200 answer as completed once its last byte is sent (a
        stream the client left before its end is not)."""
        status = 0

        async def counted(message: dict[str, Any]) -> None:
            nonlocal status
            await send(message)
            if message["type"] == "http.response.start":
                status = message["status"]
            elif status == 200 and not message.get("more_body"):
                self.counters.completed += 1

        return counted

    # -- endpoints --------------------------------------------------------------
    def _models(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {
                    "id": self.options.model,
                    "object": "model",
                    "created": self.created,
                    "owned_by": "inventiv",
                }
            ],
        }

    async def _chat(self, body: dict[str, Any], send: Send, receive: Receive) -> None:
        prompt = _chat_prompt(body.get("messages"))
        await self._generate(body, prompt, send, receive, chat=True)

    async def _completions(self, body: dict[str, Any], send: Send, receive: Receive) -> None:
        prompt = body.get("prompt")
        if isinstance(prompt, list):
            prompt = " ".join(str(p) for p in prompt)
        if not isinstance(prompt, str):
            raise ValueError("prompt must be a string or a list of strings")
        await self._generate(body, prompt, send, receive, chat=False)

    async def _generate(
        self, body: dict[str, Any], prompt: str, send: Send, receive: Receive, *, chat: bool
    ) -> None:
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            max_tokens = body.get("max_completion_tokens")
        if max_tokens is None:
            max_tokens = DEFAULT_MAX_TOKENS
        if type(max_tokens) is float and max_tokens.is_integer():
            max_tokens = int(max_tokens)  # JSON's integer, as vLLM takes it
        if type(max_tokens) is not int or max_tokens < 1:
            raise ValueError("max_tokens must be a positive integer")
        prompt_tokens = count_tokens(prompt)
        limit = self.options.max_model_len
        if prompt_tokens + max_tokens > limit:
            # vLLM's refusal, in its words.
            raise ValueError(
                f"This model's maximum context length is {limit} tokens. However, you "
                f"requested {prompt_tokens + max_tokens} tokens ({prompt_tokens} in the "
                f"messages, {max_tokens} in the completion)."
            )
        words = iter_completion_words(prompt, max_tokens)
        request_id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        self.counters.running += 1
        self.counters.prompt_tokens += prompt_tokens
        produced = 0
        try:
            if self.options.ttft_ms:
                await asyncio.sleep(self.options.ttft_ms / 1000)
            if body.get("stream"):
                # Counts its tokens as they go out: a stream can end at any token.
                await self._stream(
                    body, request_id, words, max_tokens, prompt_tokens, send, receive, chat=chat
                )
            else:
                if self.options.token_delay_ms:
                    await asyncio.sleep(self.options.token_delay_ms * max_tokens / 1000)
                produced = max_tokens
                text = " ".join(words)
                usage = _usage(prompt_tokens, produced)
                choice: dict[str, Any] = (
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "length",
                    }
                    if chat
                    else {"index": 0, "text": text, "finish_reason": "length", "logprobs": None}
                )
                await self._json(
                    send,
                    200,
                    {
                        "id": request_id,
                        "object": "chat.completion" if chat else "text_completion",
                        "created": int(time.time()),
                        "model": self.options.model,
                        "choices": [choice],
                        "usage": usage,
                    },
                )
            self.counters.success += 1
        finally:
            self.counters.running -= 1
            self.counters.generation_tokens += produced

    async def _stream(
        self,
        body: dict[str, Any],
        request_id: str,
        words: Iterator[str],
        count: int,
        prompt_tokens: int,
        send: Send,
        receive: Receive,
        *,
        chat: bool,
    ) -> int:
        options = body.get("stream_options")
        options = options if isinstance(options, dict) else {}
        include_usage = bool(options.get("include_usage"))
        # vLLM's running usage: every chunk says how many tokens so far.
        running_usage = include_usage and bool(options.get("continuous_usage_stats"))
        created = int(time.time())
        obj = "chat.completion.chunk" if chat else "text_completion"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        disconnected = asyncio.Event()

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    return

        watcher = asyncio.create_task(watch())
        produced = 0
        try:
            for index, word in enumerate(words):
                if self.options.token_delay_ms and index:
                    await asyncio.sleep(self.options.token_delay_ms / 1000)
                elif index % YIELD_EVERY_TOKENS == YIELD_EVERY_TOKENS - 1:
                    # Without a delay, sending may never wait (it does not once the client
                    # is gone): let the watcher see a disconnect.
                    await asyncio.sleep(0)
                # Checked after the wait, with no await until the token is written: a
                # token is counted only if it went out before the client left.
                if disconnected.is_set():
                    return produced
                last = index == count - 1
                text = word if index == 0 else " " + word
                choice: dict[str, Any] = (
                    {
                        "index": 0,
                        "delta": ({"role": "assistant"} if index == 0 else {}) | {"content": text},
                        "finish_reason": "length" if last else None,
                    }
                    if chat
                    else {
                        "index": 0,
                        "text": text,
                        "finish_reason": "length" if last else None,
                        "logprobs": None,
                    }
                )
                chunk = {
                    "id": request_id,
                    "object": obj,
                    "created": created,
                    "model": self.options.model,
                    "choices": [choice],
                }
                if include_usage:
                    chunk["usage"] = _usage(prompt_tokens, produced + 1) if running_usage else None
                await _event(send, chunk)
                produced += 1
                self.counters.generation_tokens += 1
            if include_usage:
                await _event(
                    send,
                    {
                        "id": request_id,
                        "object": obj,
                        "created": created,
                        "model": self.options.model,
                        "choices": [],
                        "usage": _usage(prompt_tokens, produced),
                    },
                )
            await send(
                {"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False}
            )
            return produced
        finally:
            watcher.cancel()

    async def _embeddings(self, body: dict[str, Any], send: Send, receive: Receive) -> None:
        inputs = body.get("input")
        if isinstance(inputs, str) or (isinstance(inputs, list) and _token_ids(inputs)):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            raise ValueError("input must be text or token ids, or a non-empty list of either")
        # Token ids (as vLLM takes them) are read as one word per token.
        inputs = [
            " ".join(str(int(t)) for t in i) if isinstance(i, list) and _token_ids(i) else i
            for i in inputs
        ]
        if not all(isinstance(i, str) for i in inputs):
            raise ValueError("input must be text or token ids, or a non-empty list of either")
        tokens = sum(count_tokens(i) for i in inputs)
        self.counters.prompt_tokens += tokens
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": embedding(text, self.options.embedding_dim),
            }
            for i, text in enumerate(inputs)
        ]
        await self._json(
            send,
            200,
            {
                "object": "list",
                "data": data,
                "model": self.options.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )
        self.counters.success += 1

    def _metrics(self) -> str:
        c, model = self.counters, self.options.model
        label = f'{{model_name="{model}"}}'
        return (
            "# TYPE vllm:num_requests_running gauge\n"
            f"vllm:num_requests_running{label} {c.running}\n"
            "# TYPE vllm:num_requests_waiting gauge\n"
            f"vllm:num_requests_waiting{label} {c.waiting}\n"
            "# TYPE vllm:gpu_cache_usage_perc gauge\n"
            f"vllm:gpu_cache_usage_perc{label} {min(1.0, c.running / 64):.4f}\n"
            "# TYPE vllm:prompt_tokens_total counter\n"
            f"vllm:prompt_tokens_total{label} {c.prompt_tokens}\n"
            "# TYPE vllm:generation_tokens_total counter\n"
            f"vllm:generation_tokens_total{label} {c.generation_tokens}\n"
            "# TYPE vllm:request_success_total counter\n"
            f"vllm:request_success_total{label} {c.success}\n"
            "# TYPE mock:responses_completed_total counter\n"
            f"mock:responses_completed_total{label} {c.completed}\n"
        )

    # -- plumbing ---------------------------------------------------------------
    async def _json(self, send: Send, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        await _respond(send, status, body, b"application/json")

    async def _text(self, send: Send, status: int, text: str) -> None:
        await _respond(send, status, text.encode(), b"text/plain; version=0.0.4")


async def _respond(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _token_ids(value: list[Any]) -> bool:
    # JSON's integers: 843.0 is one, as vLLM takes it.
    return bool(value) and all(
        type(t) is int or (type(t) is float and t.is_integer()) for t in value
    )


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _err(code: str, message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code, "param": None}}


async def _event(send: Send, payload: dict[str, Any]) -> None:
    data = b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ValueError("client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise ValueError("body too large")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def parse_args(argv: list[str] | None = None) -> tuple[EngineOptions, str, int]:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="inventiv-mock-engine", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default=env("MOCK_ENGINE_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("MOCK_ENGINE_PORT", "8000")))
    parser.add_argument("--model", default=env("MOCK_ENGINE_MODEL", "inventiv/mock-echo"))
    parser.add_argument("--api-key", default=env("MOCK_ENGINE_API_KEY") or None)
    parser.add_argument(
        "--startup-delay",
        type=float,
        default=float(env("MOCK_ENGINE_STARTUP_DELAY_S", "0")),
        help="seconds of simulated model loading",
    )
    parser.add_argument(
        "--loaded-when",
        metavar="PATH",
        default=env("MOCK_ENGINE_LOADED_WHEN") or None,
        help="the model loads until this file exists (and the startup delay is over)",
    )
    parser.add_argument(
        "--ttft-ms",
        type=float,
        default=float(env("MOCK_ENGINE_TTFT_MS", "0")),
        help="time to first token",
    )
    parser.add_argument(
        "--token-delay-ms",
        type=float,
        default=float(env("MOCK_ENGINE_TOKEN_DELAY_MS", "0")),
        help="delay between tokens",
    )
    parser.add_argument(
        "--error-rate",
        type=float,
        default=float(env("MOCK_ENGINE_ERROR_RATE", "0")),
        help="share of requests answered 500, 0..1",
    )
    parser.add_argument(
        "--embedding-dim", type=int, default=int(env("MOCK_ENGINE_EMBEDDING_DIM", "384"))
    )
    parser.add_argument("--seed", type=int, default=int(env("MOCK_ENGINE_SEED", "0")))
    parser.add_argument(
        "--max-model-len",
        type=int,
        default=DEFAULT_MAX_MODEL_LEN,
        help="prompt and completion tokens of one request, at most",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.error_rate <= 1:
        parser.error("--error-rate must be between 0 and 1")
    if args.max_model_len < 1:
        parser.error("--max-model-len must be positive")
    options = EngineOptions(
        model=args.model,
        api_key=args.api_key,
        startup_delay_s=args.startup_delay,
        loaded_when=args.loaded_when,
        ttft_ms=args.ttft_ms,
        token_delay_ms=args.token_delay_ms,
        error_rate=args.error_rate,
        embedding_dim=args.embedding_dim,
        seed=args.seed,
        max_model_len=args.max_model_len,
    )
    return options, args.host, args.port


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    options, host, port = parse_args(argv)
    uvicorn.run(
        MockEngine(options),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=60,
        server_header=False,
        date_header=False,
    )


if __name__ == "__main__":
    main()
