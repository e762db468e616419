"""What the gateway passes on to an engine: a JSON object of bounded depth, made only of
text an engine (and PostgreSQL) can take, whose documented fields have their documented
types and ranges, asking for no more tokens than the model's context holds.

An engine is a GPU's worth of work and memory: `max_tokens` of 10^20, a string it cannot
encode, a body nested 100,000 deep must be refused here, with a 400 in OpenAI's envelope
that names the field, rather than discovered by the engine, by PostgreSQL (the unknown
model lookup) or by Python's own recursion limit. The checks run on every request, so
they cost a few dictionary look-ups; the costly ones (nesting depth, unpaired
surrogates) run only when a scan of the bytes says they may be needed. Each field's rule
is in fields.py, beside the schema the OpenAPI document declares for it. No message
repeats a value back: it may be huge.
"""

from __future__ import annotations

import json
import re
from itertools import compress
from typing import Any

from inventiv_api.gateway.errors import GatewayError, invalid
from inventiv_api.gateway.fields import (
    CHECKS,
    INT64_MAX,
    MAX_MODEL_NAME,
    PROMPT,
    TOKEN_COUNTS,
    as_integer,
)

# Deeper than any request OpenAI documents needs (JSON schemas of tools included), and
# shallow enough for every encoder and engine on the way.
MAX_DEPTH = 64
# A token of any tokenizer is a few characters on average: a prompt of more characters
# than this many per token of the context cannot fit in it.
MAX_CHARS_PER_TOKEN = 32
# A JSON escape of a UTF-16 surrogate: the only way a body in UTF-8 can carry one.
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# What fields.MODEL_NAME_PATTERN excludes.
NOT_IN_A_MODEL_NAME = re.compile(r"[\x00-\x1f\x7f-\x9f]")


# -- the body as a whole -----------------------------------------------------------------


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 saying what is wrong with it."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise invalid("the body must be JSON encoded in UTF-8") from None
    try:
        body = _DECODER.decode(text)
    except RecursionError:
        raise _too_deep() from None
    except json.JSONDecodeError as exc:
        raise invalid(
            f"the body is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    except ValueError:  # an integer of more digits than Python converts
        raise invalid("the body holds a number too long to read") from None
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object")
    # Walked over the parsed values, not the bytes: a chat body is mostly text, a few
    # containers (counting its brackets would cost more than walking them).
    if _deeper_than(body, MAX_DEPTH):
        raise _too_deep()
    if b"\\u" in raw and SURROGATE_ESCAPE.search(raw):
        _refuse_unpaired_surrogates(body)
    return body


def _no_constant(name: str) -> Any:
    raise invalid(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise invalid("the body holds a number too large for a 64-bit float")
    return value


# Made once: json.loads with options would make a decoder per request.
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)


def _too_deep() -> GatewayError:
    return invalid(f"the body is nested more than {MAX_DEPTH} levels deep")


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` nests more than `limit` levels, walked level by level (no
    recursion), picking each level's containers out at C speed (a body of token ids has
    hundreds of thousands of numbers to pass over)."""
    level, depth = [value], 1
    while level:
        if depth > limit:
            return True
        below: list[Any] = []
        for container in level:
            items = container.values() if type(container) is dict else container
            if not _CONTAINERS.isdisjoint(map(type, items)):
                below.extend(compress(items, map(_CONTAINERS.__contains__, map(type, items))))
        level, depth = below, depth + 1
    return False


_CONTAINERS = frozenset((dict, list))


def _refuse_unpaired_surrogates(body: dict[str, Any]) -> None:
    """A 400 naming the field that holds an unpaired UTF-16 surrogate, if one does.
    Paired surrogates were joined by the parser: what is left cannot be UTF-8."""
    for name, value in body.items():
        try:
            json.dumps([name, value], ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise invalid(
                "the body holds an unpaired UTF-16 surrogate (a \\ud800-\\udfff escape "
                "without its pair), which is not text",
                name if _is_text(name) else None,
            ) from None


def _is_text(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def model_name(body: dict[str, Any]) -> str:
    """The `model` asked for: text that can name a model (it is looked up in PostgreSQL,
    which stores no NUL, and repeated in error messages and logs)."""
    model = body.get("model")
    if not isinstance(model, str):
        raise invalid("the body must be a JSON object with a `model` string", "model")
    if not model or len(model) > MAX_MODEL_NAME or NOT_IN_A_MODEL_NAME.search(model):
        raise invalid(
            f"`model` must be a model name: 1 to {MAX_MODEL_NAME} characters, none of them "
            "a control character",
            "model",
        )
    return model


# -- the fields ----------------------------------------------------------------------------


def check_fields(body: dict[str, Any], path: str, context_length: int | None) -> None:
    """Every documented field of the endpoint's request present in `body` has its type and
    range; token counts and the prompt fit `context_length` when the model's is known
    (None: nothing serves the model, and the request goes no further anyway)."""
    prompt = PROMPT[path]
    if body.get(prompt) is None:
        raise invalid(f"`{prompt}` is required", prompt)
    checks = CHECKS[path]
    for name, value in body.items():
        check = checks.get(name)
        if check is not None and value is not None:
            check(name, value)
    for name in TOKEN_COUNTS:
        value = as_integer(body.get(name))
        if value is not None and value > (context_length or INT64_MAX):
            if context_length is None:
                raise invalid(f"`{name}` must be an integer of at most 64 bits", name)
            raise invalid(
                f"`{name}` must be at most {context_length}, the context length of "
                f"{body['model']} in tokens",
                name,
                code="context_length_exceeded",
            )
    if context_length is not None:
        _check_prompt_size(body, path, context_length)


def _check_prompt_size(body: dict[str, Any], path: str, context_length: int) -> None:
    name = PROMPT[path]
    prompts = body[name]
    if isinstance(prompts, str) or (prompts and not isinstance(prompts[0], list | str)):
        prompts = [prompts]  # one prompt: text, token ids or chat messages
    for prompt in prompts:
        if path == "/v1/chat/completions":
            size, unit = _chat_characters(prompt), "characters"
        elif isinstance(prompt, str):
            size, unit = len(prompt), "characters"
        else:
            size, unit = len(prompt), "tokens"
        limit = context_length * MAX_CHARS_PER_TOKEN if unit == "characters" else context_length
        if size > limit:
            raise invalid(
                f"`{name}` is {size} {unit} long: more than the {context_length}-token "
                f"context of {body['model']} can hold",
                name,
                code="context_length_exceeded",
            )


def _chat_characters(messages: list[dict[str, Any]]) -> int:
    size = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            size += len(content)
        elif isinstance(content, list):
            size += sum(len(p["text"]) for p in content if isinstance(p.get("text"), str))
    return size
