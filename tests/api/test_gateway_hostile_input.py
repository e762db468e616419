"""A hostile client against the live gateway in front of a real mock engine: whatever
the body, the answer is a 4xx in OpenAI's envelope naming the field at fault, never a
500, never Python's own words, and nothing out of bounds reaches the engine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.api.conftest import World
from tests.support.mock_engine import MOCK_MODEL
from tests.support.served_gateway import ServedGateway, served_gateway

CONTEXT = 8192  # the seed catalog's context length of the mock model
HELLO = [{"role": "user", "content": "hello"}]
CHAT = {"model": MOCK_MODEL, "messages": HELLO, "max_tokens": 2}
COMPLETION = {"model": MOCK_MODEL, "prompt": "hello", "max_tokens": 2}
EMBEDDING = {"model": MOCK_MODEL, "input": "hello"}


@pytest.fixture(scope="module")
def served(
    world: World, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedGateway]:
    tmp = tmp_path_factory.mktemp("hostile")
    with served_gateway(world.api.base_url, world["owner"], database_url, tmp) as gateway:
        yield gateway


def refused(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    """The answer is `status` in OpenAI's envelope, in words for a person; its error."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    for python in ("Traceback", "codec", "Error(", "Expecting value: line"):
        assert python not in error["message"]
    assert len(response.content) < 2000  # nothing huge is repeated back
    return dict(error)


@pytest.mark.parametrize("path", ["/chat/completions", "/embeddings"])
@pytest.mark.parametrize("model", [f"{MOCK_MODEL}\x00", "\x00", "\ud800", "a\nb", "m" * 100_000])
def test_a_model_name_postgresql_cannot_store_is_a_400_not_database_down(
    served: ServedGateway, path: str, model: str
) -> None:
    body = {**(CHAT if path == "/chat/completions" else EMBEDDING), "model": model}
    assert refused(served.post(path, body))["param"] == "model"


def test_the_official_client_sees_a_bad_model_name_as_a_bad_request(served: ServedGateway) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        served.ai().chat.completions.create(model=f"{MOCK_MODEL}\x00", messages=HELLO)  # type: ignore[arg-type]
    assert raised.value.param == "model"


def test_nesting_is_bounded_before_anything_recurses(served: ServedGateway) -> None:
    head = json.dumps({**CHAT, "stream": True})[:-1].encode()
    deep = head + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert "nested" in refused(served.post("/chat/completions", content=deep))["message"]
    objects = head + b', "x": ' + b'{"a":' * 70 + b"1" + b"}" * 70 + b"}"
    refused(served.post("/chat/completions", content=objects))

    # 64 levels pass, streamed: the body the gateway re-encodes for usage included.
    nested: Any = 1
    for _ in range(63):
        nested = {"a": nested}
    body = {**CHAT, "stream": True, "metadata_of_mine": nested}
    answer = served.post("/chat/completions", body)
    assert answer.status_code == 200, answer.text
    assert answer.text.rstrip().endswith("data: [DONE]")


@pytest.mark.parametrize("stream", [False, True])
def test_an_unpaired_surrogate_is_refused_and_a_paired_one_is_text(
    served: ServedGateway, stream: bool
) -> None:
    lone = b'{"model": "%s", "stream": %s, "messages": [{"role": "user", "content": "a\\ud800"}]}'
    flag = b"true" if stream else b"false"
    error = refused(served.post("/chat/completions", content=lone % (MOCK_MODEL.encode(), flag)))
    assert "surrogate" in error["message"] and error["param"] == "messages"
    in_a_key = b'{"model": "%s", "messages": [{"role": "user", "content": "x"}], "\\uDC00": 1}'
    refused(served.post("/chat/completions", content=in_a_key % MOCK_MODEL.encode()))
    # Encoded as bytes rather than escaped, it is not UTF-8 at all.
    raw = b'{"model": "%s", "messages": [{"role": "user", "content": "\xed\xa0\x80"}]}'
    assert (
        "UTF-8"
        in refused(served.post("/chat/completions", content=raw % MOCK_MODEL.encode()))["message"]
    )
    emoji = served.ai().chat.completions.create(
        model=MOCK_MODEL, messages=[{"role": "user", "content": "\U0001f600 ok"}], max_tokens=2
    )
    assert emoji.usage is not None and emoji.usage.prompt_tokens == 2


MALFORMED = [
    b"",
    b"null",
    b"[]",
    b'"text"',
    b"\xff\xfe{}",
    b"\xef\xbb\xbf{}",
    b"{not json",
    b'{"model": 5}',
    b'{"model": null, "messages": []}',
    b'{"model": "%s", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}',
    b'{"model": "%s", "messages": [{"role": "user", "content": "x"}], "seed": -Infinity}',
    b'{"model": "%s", "messages": [{"role": "user", "content": "x"}], "x": 1e999}',
    b'{"model": "%s", "messages": [{"role": "user", "content": "x"}], "x": 1' + b"0" * 5000 + b"}",
]


def test_malformed_bodies_are_400s_in_openai_s_words(served: ServedGateway) -> None:
    for content in MALFORMED:
        if b"%s" in content:
            content = content % MOCK_MODEL.encode()
        error = refused(served.post("/chat/completions", content=content))
        assert error["message"], content[:80]


def test_max_tokens_past_the_context_length_never_reaches_the_engine(
    served: ServedGateway,
) -> None:
    before = served.engine.metric("generation_tokens_total")
    ai = served.ai(timeout=10)
    for asked in (CONTEXT + 1, 99999999999999999999):
        for field in ("max_tokens", "max_completion_tokens"):
            with pytest.raises(openai.BadRequestError) as raised:
                ai.chat.completions.create(model=MOCK_MODEL, messages=HELLO, **{field: asked})  # type: ignore[call-overload]
            assert raised.value.param == field and raised.value.code == "context_length_exceeded"
            assert str(CONTEXT) in raised.value.message
        with pytest.raises(openai.BadRequestError) as raised:
            ai.completions.create(model=MOCK_MODEL, prompt="x", max_tokens=asked, stream=True)
        assert raised.value.param == "max_tokens"
    assert served.engine.metric("generation_tokens_total") == before
    # Up to the context, it is the engine's to judge (and the mock makes every token).
    done = ai.chat.completions.create(model=MOCK_MODEL, messages=HELLO, max_tokens=CONTEXT - 1)
    assert done.usage is not None and done.usage.completion_tokens == CONTEXT - 1


def test_a_prompt_longer_than_the_context_can_hold_is_refused(served: ServedGateway) -> None:
    long = "word " * (CONTEXT * 32 // 5 + 1)
    parts = [{"role": "user", "content": [{"type": "text", "text": long}]}]
    error = refused(served.post("/chat/completions", {**CHAT, "messages": parts}))
    assert error["param"] == "messages" and error["code"] == "context_length_exceeded"
    assert refused(served.post("/completions", {**COMPLETION, "prompt": long}))["param"] == "prompt"
    tokens = list(range(CONTEXT + 1))
    assert (
        refused(served.post("/completions", {**COMPLETION, "prompt": tokens}))["param"] == "prompt"
    )
    assert (
        refused(served.post("/embeddings", {**EMBEDDING, "input": ["a", long]}))["param"] == "input"
    )


BAD_FIELDS: list[tuple[str, dict[str, Any], str, Any]] = [
    # (endpoint, base body, field, value)
    *[
        ("/chat/completions", CHAT, field, value)
        for field, value in [
            ("max_tokens", True),
            ("max_tokens", 0),
            ("max_tokens", -5),
            ("max_tokens", 1.5),
            ("max_tokens", "16"),
            ("max_completion_tokens", False),
            ("min_tokens", 10**6),
            ("n", 0),
            ("n", 129),
            ("n", True),
            ("n", 2**64),
            ("temperature", 2.5),
            ("temperature", -0.1),
            ("temperature", True),
            ("temperature", "hot"),
            ("top_p", 1.01),
            ("top_k", 2**64),
            ("presence_penalty", -3),
            ("frequency_penalty", 2**70),
            ("seed", 2**64),
            ("seed", -(2**63) - 1),
            ("seed", 1.5),
            ("logprobs", 1),
            ("top_logprobs", 21),
            ("top_logprobs", -1),
            ("best_of", 21),
            ("best_of", 2**70),
            ("logit_bias", {"50256": 101}),
            ("logit_bias", {"x": 1}),
            ("logit_bias", {"9" * 50: 1}),
            ("logit_bias", []),
            ("stream", "yes"),
            ("stream", 1),
            ("stream_options", []),
            ("stream_options", {"include_usage": "yes"}),
            ("stop", [1]),
            ("messages", []),
            ("messages", "hi"),
            ("messages", [1]),
            ("messages", [{"content": "no role"}]),
            ("messages", [{"role": "user", "content": 5}]),
            ("messages", [{"role": "user", "content": ["part"]}]),
            ("user", 5),
        ]
    ],
    *[
        ("/completions", COMPLETION, field, value)
        for field, value in [
            ("best_of", 0),
            ("best_of", 21),
            ("logprobs", 21),
            ("logprobs", True),
            ("echo", "yes"),
            ("suffix", 5),
            ("prompt", 5),
            ("prompt", []),
            ("prompt", [1, -2]),
            ("prompt", [1, 2**40]),
            ("prompt", [[1], []]),
            ("prompt", ["a", 1]),
        ]
    ],
    *[
        ("/embeddings", EMBEDDING, field, value)
        for field, value in [
            ("input", 5),
            ("input", []),
            ("input", ["a"] * 2049),
            ("input", [True]),
            ("dimensions", 0),
            ("dimensions", 10**6),
            ("dimensions", True),
            ("encoding_format", "hex"),
        ]
    ],
]


@pytest.mark.parametrize(("path", "base", "field", "value"), BAD_FIELDS)
def test_documented_fields_out_of_type_or_range_are_400s_naming_the_field(
    served: ServedGateway, path: str, base: dict[str, Any], field: str, value: Any
) -> None:
    assert refused(served.post(path, {**base, field: value}))["param"] == field


def test_a_missing_model_or_prompt_is_named(served: ServedGateway) -> None:
    for path, base in (("/chat/completions", CHAT), ("/completions", COMPLETION)):
        prompt = "messages" if path == "/chat/completions" else "prompt"
        assert refused(served.post(path, {**base, prompt: None}))["param"] == prompt
        without_model = {k: v for k, v in base.items() if k != "model"}
        assert refused(served.post(path, without_model))["param"] == "model"


def test_values_within_their_ranges_pass(served: ServedGateway) -> None:
    ai = served.ai()
    for options in (
        {"temperature": 0, "top_p": 1, "n": 1, "seed": -(2**63)},
        {"temperature": 2.0, "presence_penalty": -2, "frequency_penalty": 2, "seed": 2**63 - 1},
        {"logprobs": True, "top_logprobs": 20, "logit_bias": {"50256": -100}, "stop": ["a", "b"]},
        {"max_tokens": None, "max_completion_tokens": 3, "stream_options": None, "user": "u"},
    ):
        answer = ai.chat.completions.create(model=MOCK_MODEL, messages=HELLO, **options)  # type: ignore[call-overload]
        assert answer.choices
    text = ai.completions.create(model=MOCK_MODEL, prompt=["a", "b"], n=2, best_of=3, logprobs=5)
    assert text.choices
    # An integer is JSON's: 2.0 is one (the OpenAPI schema's `integer` says so too).
    answer = served.post("/chat/completions", {**CHAT, "max_tokens": 2.0, "n": 1.0})
    assert answer.status_code == 200, answer.text
    vectors = ai.embeddings.create(model=MOCK_MODEL, input=["a"] * 2048, encoding_format="float")
    assert len(vectors.data) == 2048
