"""The mock engine as a real process, spoken to by the official `openai` client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from inventiv_worker.mock_engine import completion_words, count_tokens
from tests.support.mock_engine import MOCK_MODEL as MODEL
from tests.support.mock_engine import MockEngineProcess as Engine
from tests.support.waiting import wait_until


@pytest.fixture
def engine_factory(tmp_path: Path) -> Iterator[Any]:
    engines: list[Engine] = []

    def make(*flags: str) -> Engine:
        engines.append(Engine(tmp_path, *flags))
        return engines[-1]

    yield make
    for engine in engines:
        engine.stop()


def test_chat_completion_counts_tokens_deterministically(engine_factory: Any) -> None:
    client = engine_factory().client()
    prompt = "count these five words"
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=7
    )
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (
        4,
        7,
        11,
    )
    assert reply.choices[0].message.content == " ".join(completion_words(prompt, 7))
    again = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=7
    )
    assert again.choices[0].message.content == reply.choices[0].message.content
    assert count_tokens("") == 1


def test_streaming_honours_include_usage(engine_factory: Any) -> None:
    client = engine_factory().client()
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there"},
    ]
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=messages,
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(
        c.choices[0].delta.content or "" for c in chunks if c.choices
    ).split() == completion_words("be brief hello there", 5)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (4, 5)
    plain = list(
        client.chat.completions.create(model=MODEL, messages=messages, max_tokens=5, stream=True)
    )
    assert all(c.usage is None for c in plain) and len(plain) == 5


def test_completions_and_embeddings(engine_factory: Any) -> None:
    client = engine_factory("--embedding-dim", "16").client()
    completion = client.completions.create(model=MODEL, prompt="one two three", max_tokens=4)
    assert completion.usage is not None and (
        completion.usage.prompt_tokens,
        completion.usage.completion_tokens,
    ) == (3, 4)
    streamed = list(
        client.completions.create(model=MODEL, prompt="one two three", max_tokens=4, stream=True)
    )
    assert "".join(c.choices[0].text for c in streamed) == completion.choices[0].text

    vectors = client.embeddings.create(model=MODEL, input=["alpha beta", "gamma"])
    assert [len(d.embedding) for d in vectors.data] == [16, 16]
    assert abs(sum(v * v for v in vectors.data[0].embedding) - 1.0) < 1e-4
    assert vectors.usage.prompt_tokens == 3
    same = client.embeddings.create(model=MODEL, input="alpha beta")
    assert same.data[0].embedding == vectors.data[0].embedding
    assert [m.id for m in client.models.list()] == [MODEL]


def test_errors_use_the_openai_shape(engine_factory: Any) -> None:
    engine = engine_factory("--api-key", "k-123")
    with pytest.raises(openai.AuthenticationError):
        engine.client("wrong").models.list()
    client = engine.client("k-123")
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="other", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[])
    raw = httpx.post(
        f"{engine.url}/v1/completions", content=b"{nope", headers={"Authorization": "Bearer k-123"}
    )
    assert raw.status_code == 400 and raw.json()["error"]["type"] == "invalid_request_error"
    failing = engine_factory("--error-rate", "1").client()
    with pytest.raises(openai.InternalServerError):
        failing.completions.create(model=MODEL, prompt="x")


def test_the_model_loads_before_the_engine_serves_and_vllm_metrics(
    engine_factory: Any, tmp_path: Path
) -> None:
    # The engine answers at once, but loads its model until the test says it is done.
    loaded = tmp_path / "model-loaded"
    engine = engine_factory("--loaded-when", str(loaded))
    assert httpx.get(f"{engine.url}/health").status_code == 503
    assert httpx.get(f"{engine.url}/v1/models").status_code == 503
    loaded.touch()
    wait_until(
        lambda: httpx.get(f"{engine.url}/health").status_code == 200,
        60,
        "the engine saying healthy once its model is loaded",
    )
    engine.client().completions.create(model=MODEL, prompt="a b", max_tokens=3)
    metrics = httpx.get(f"{engine.url}/metrics").text
    label = '{model_name="inventiv/mock-echo"}'
    for line in (
        f"vllm:num_requests_running{label} 0",
        f"vllm:num_requests_waiting{label} 0",
        f"vllm:prompt_tokens_total{label} 2",
        f"vllm:generation_tokens_total{label} 3",
        f"vllm:request_success_total{label} 1",
    ):
        assert line in metrics
    assert "vllm:gpu_cache_usage_perc" in metrics


def test_the_startup_delay_holds_the_model_back(engine_factory: Any) -> None:
    started = time.monotonic()
    engine = engine_factory("--startup-delay", "3")
    wait_until(
        lambda: httpx.get(f"{engine.url}/health").status_code == 200,
        60,
        "the engine saying healthy once its startup delay is over",
    )
    # The delay is the behaviour: a lower bound only, which a slow machine cannot fail.
    assert time.monotonic() - started >= 3


def test_ttft_and_token_delay(engine_factory: Any) -> None:
    client = engine_factory("--ttft-ms", "300", "--token-delay-ms", "50").client()
    started = time.perf_counter()
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=5, stream=True
    )
    first = next(iter(stream))
    ttft = time.perf_counter() - started
    list(stream)
    total = time.perf_counter() - started
    assert first.choices[0].delta.content
    # The delays are the behaviour: lower bounds only, which a slow machine cannot fail.
    assert ttft >= 0.3 and total >= 0.3 + 4 * 0.05
