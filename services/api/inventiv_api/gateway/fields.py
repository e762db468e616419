"""The fields of each endpoint's request OpenAI documents (and a few of vLLM's), each a
`Rule`: the check the gateway applies and the JSON schema its OpenAPI document declares,
written side by side so that what the spec allows and what the gateway takes agree.

Types are JSON's, not Python's: a boolean is not a number, an integer may be written
1.0 but not 1.5, and integers are bounded to 64 bits. Every optional field may be null
(the engine's default). No message repeats the value: it may be huge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from inventiv_api.gateway.errors import invalid

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
TOKEN_ID_MAX = 2**31 - 1
MAX_MODEL_NAME = 300  # models.model_id is VARCHAR(300): a longer name names no model
# Characters no model name has, which PostgreSQL (NUL) or a log line cannot take.
MODEL_NAME_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
MAX_CHOICES = 128  # n (OpenAI's bound)
MAX_BEST_OF = 20  # best_of (OpenAI's bound)
MAX_LOGPROBS = 20  # top_logprobs (OpenAI's bound), also vLLM's default max_logprobs
MAX_PROMPTS = 2048  # OpenAI's bound on the inputs of one embeddings request
MAX_DIMENSIONS = 65_536
LOGIT_BIAS = 100
TOKEN_COUNTS = ("max_tokens", "max_completion_tokens", "min_tokens")

Check = Callable[[str, Any], None]


@dataclass(frozen=True)
class Rule:
    check: Check
    schema: dict[str, Any]


def as_integer(value: Any) -> int | None:
    """The integer `value` is in JSON's terms (1 and 1.0, not true or 1.5), else None."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    return None


def integer(low: int, high: int) -> Rule:
    def check(name: str, value: Any) -> None:
        number = as_integer(value)
        if number is None:
            raise invalid(f"`{name}` must be an integer", name)
        if not low <= number <= high:
            raise invalid(f"`{name}` must be an integer from {low} to {high}", name)

    return Rule(check, {"type": "integer", "minimum": low, "maximum": high})


def count(low: int) -> Rule:
    """A number of tokens. Its upper bound, the model's context length (64 bits when not
    known), is validation.check_fields's to check: it is not known here."""

    def check(name: str, value: Any) -> None:
        number = as_integer(value)
        if number is None:
            raise invalid(f"`{name}` must be an integer", name)
        if number < low:
            raise invalid(f"`{name}` must be at least {low}", name)

    schema = {"type": "integer", "minimum": low, "maximum": INT64_MAX}
    return Rule(check, {**schema, "description": "at most the model's context length"})


def number(low: float, high: float) -> Rule:
    def check(name: str, value: Any) -> None:
        if type(value) not in (int, float):
            raise invalid(f"`{name}` must be a number", name)
        if not low <= value <= high:
            raise invalid(f"`{name}` must be a number from {low} to {high}", name)

    return Rule(check, {"type": "number", "minimum": low, "maximum": high})


def _boolean(name: str, value: Any) -> None:
    if type(value) is not bool:
        raise invalid(f"`{name}` must be true or false", name)


def _string(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise invalid(f"`{name}` must be a string", name)


BOOLEAN = Rule(_boolean, {"type": "boolean"})
STRING = Rule(_string, {"type": "string"})


def one_of(*allowed: str) -> Rule:
    def check(name: str, value: Any) -> None:
        if value not in allowed:
            raise invalid(f"`{name}` must be one of {', '.join(allowed)}", name)

    return Rule(check, {"type": "string", "enum": list(allowed)})


def _stream_options(name: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise invalid(f"`{name}` must be an object", name)
    for option in ("include_usage", "continuous_usage_stats"):
        if value.get(option) is not None and type(value[option]) is not bool:
            raise invalid(f"`{name}.{option}` must be true or false", name)


STREAM_OPTIONS = Rule(
    _stream_options,
    {
        "type": "object",
        "properties": {
            option: {"type": ["boolean", "null"]}
            for option in ("include_usage", "continuous_usage_stats")
        },
    },
)


def _stop(name: str, value: Any) -> None:
    if not isinstance(value, str) and not (
        isinstance(value, list) and all(isinstance(s, str) for s in value)
    ):
        raise invalid(f"`{name}` must be a string or an array of strings", name)


STOP = Rule(_stop, {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})


def _logit_bias(name: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise invalid(f"`{name}` must be an object of token ids and biases", name)
    for token, bias in value.items():
        if not (token.isascii() and token.isdigit() and len(token) <= 9):
            raise invalid(f"`{name}` keys must be token ids (integers as strings)", name)
        if type(bias) not in (int, float) or not -LOGIT_BIAS <= bias <= LOGIT_BIAS:
            raise invalid(f"`{name}` values must be numbers from -100 to 100", name)


LOGIT_BIAS_RULE = Rule(
    _logit_bias,
    {
        "type": "object",
        "propertyNames": {"pattern": "^[0-9]{1,9}$"},
        "additionalProperties": {"type": "number", "minimum": -LOGIT_BIAS, "maximum": LOGIT_BIAS},
    },
)


def _messages(name: str, value: Any) -> None:
    if not isinstance(value, list) or not value:
        raise invalid(f"`{name}` must be a non-empty array of messages", name)
    for message in value:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise invalid(f"each of `{name}` must be an object with a `role` string", name)
        content = message.get("content")
        if content is None or isinstance(content, str):
            continue
        if not isinstance(content, list) or not all(isinstance(p, dict) for p in content):
            raise invalid("a message's `content` must be a string or an array of parts", name)


MESSAGES = Rule(
    _messages,
    {
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "object",
            "required": ["role"],
            "properties": {
                "role": {"type": "string"},
                "content": {
                    "anyOf": [
                        {"type": "string"},
                        {"type": "array", "items": {"type": "object"}},
                        {"type": "null"},
                    ]
                },
            },
        },
        "description": "at most 32 characters of content per token of the model's context",
    },
)


def _token_ids(value: list[Any]) -> bool:
    if not _ONLY_INT.issuperset(map(type, value)):  # the common case, at C speed
        if not all(as_integer(t) is not None for t in value):
            return False
        value = [int(t) for t in value]
    return min(value) >= 0 and max(value) <= TOKEN_ID_MAX


_ONLY_INT = frozenset((int,))


def _prompts(name: str, value: Any) -> None:
    """Text or token ids, or a non-empty array of at most MAX_PROMPTS of either."""
    if isinstance(value, str):
        return
    if isinstance(value, list) and value:
        if _token_ids(value):
            return
        if len(value) <= MAX_PROMPTS and (
            all(isinstance(v, str) for v in value)
            or all(isinstance(v, list) and v and _token_ids(v) for v in value)
        ):
            return
    raise invalid(
        f"`{name}` must be a string, an array of token ids, or a non-empty array of at most "
        f"{MAX_PROMPTS} of either",
        name,
    )


_TOKEN_IDS = {
    "type": "array",
    "minItems": 1,
    "items": {"type": "integer", "minimum": 0, "maximum": TOKEN_ID_MAX},
}
PROMPTS = Rule(
    _prompts,
    {
        "anyOf": [
            {"type": "string"},
            _TOKEN_IDS,
            {"type": "array", "minItems": 1, "maxItems": MAX_PROMPTS, "items": {"type": "string"}},
            {"type": "array", "minItems": 1, "maxItems": MAX_PROMPTS, "items": _TOKEN_IDS},
        ],
        "description": (
            "each prompt at most the model's context length in tokens, or 32 characters per "
            "token of it"
        ),
    },
)

_SAMPLING: dict[str, Rule] = {
    "max_tokens": count(1),
    "min_tokens": count(0),  # vLLM's
    "n": integer(1, MAX_CHOICES),
    "best_of": integer(1, MAX_BEST_OF),  # vLLM takes it on chat too
    "temperature": number(0, 2),
    "top_p": number(0, 1),
    "top_k": integer(-1, INT64_MAX),  # vLLM's
    "min_p": number(0, 1),  # vLLM's
    "presence_penalty": number(-2, 2),
    "frequency_penalty": number(-2, 2),
    "seed": integer(INT64_MIN, INT64_MAX),
    "stream": BOOLEAN,
    "stream_options": STREAM_OPTIONS,
    "stop": STOP,
    "logit_bias": LOGIT_BIAS_RULE,
    "user": STRING,
}
# The fields of each endpoint; the first is its prompt, required as `model` is.
FIELDS: dict[str, dict[str, Rule]] = {
    "/v1/chat/completions": {
        "messages": MESSAGES,
        **_SAMPLING,
        "max_completion_tokens": count(1),
        "logprobs": BOOLEAN,
        "top_logprobs": integer(0, MAX_LOGPROBS),
    },
    "/v1/completions": {
        "prompt": PROMPTS,
        **_SAMPLING,
        "logprobs": integer(0, MAX_LOGPROBS),
        "echo": BOOLEAN,
        "suffix": STRING,
    },
    "/v1/embeddings": {
        "input": PROMPTS,
        "dimensions": integer(1, MAX_DIMENSIONS),
        "encoding_format": one_of("float", "base64"),
        "user": STRING,
    },
}
PROMPT = {path: next(iter(fields)) for path, fields in FIELDS.items()}
# Only the checks, for the hot path.
CHECKS = {
    path: {name: rule.check for name, rule in fields.items()} for path, fields in FIELDS.items()
}


def request_schema(path: str) -> dict[str, Any]:
    """The JSON schema of the endpoint's request body, for the OpenAPI document."""
    prompt = PROMPT[path]
    properties: dict[str, Any] = {
        "model": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_MODEL_NAME,
            "pattern": MODEL_NAME_PATTERN,
        }
    }
    for name, rule in FIELDS[path].items():
        properties[name] = (
            rule.schema if name == prompt else {"anyOf": [rule.schema, {"type": "null"}]}
        )
    return {
        "type": "object",
        "required": ["model", prompt],
        "properties": properties,
        "description": "JSON nested at most 64 levels, with no unpaired UTF-16 surrogate",
    }
