"""The mock engine against hostile requests, as a real process: it refuses what does not
fit its max model length (as vLLM does), makes a completion's words as it sends them
(so a huge request never sits in its memory), and answers odd bodies with a 4xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import psutil
import pytest

from tests.support.mock_engine import MOCK_MODEL as MODEL
from tests.support.mock_engine import MockEngineProcess as Engine
from tests.support.waiting import wait_until

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[list[Engine]]:
    started: list[Engine] = []
    yield started
    for engine in started:
        engine.stop()


def rss_mb(engine: Engine) -> float:
    return float(psutil.Process(engine.proc.pid).memory_info().rss) / 2**20


def test_what_does_not_fit_the_max_model_length_is_refused(
    engines: list[Engine], tmp_path: Path
) -> None:
    engines.append(Engine(tmp_path, "--max-model-len", "64"))
    # A client that gives up rather than wait out 10**12 tokens if they were made.
    client = engines[0].client().with_options(timeout=60)
    done = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=63)
    assert done.usage is not None and done.usage.total_tokens == 64
    for asked in (64, 10**12, 99999999999999999999):
        with pytest.raises(openai.BadRequestError, match="maximum context length is 64"):
            client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=asked)
        with pytest.raises(openai.BadRequestError, match="maximum context length is 64"):
            client.completions.create(model=MODEL, prompt="x", max_tokens=asked, stream=True)
    long_prompt = " ".join(["word"] * 64)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=MODEL, prompt=long_prompt, max_tokens=1)
    # Refused before a single token was made: only the first request's count.
    assert engines[0].metric("generation_tokens_total") == 63


def test_a_long_stream_is_made_as_it_is_sent(engines: list[Engine], tmp_path: Path) -> None:
    engines.append(Engine(tmp_path, "--max-model-len", str(10**9)))
    engine = engines[0]
    before = rss_mb(engine)
    body = {"model": MODEL, "messages": HELLO, "max_tokens": 30_000_000, "stream": True}
    with httpx.stream("POST", f"{engine.url}/v1/chat/completions", json=body, timeout=60) as r:
        first = next(r.iter_bytes())
        grown = rss_mb(engine) - before
    assert first.startswith(b"data: {")
    # 30 million words made up front would be hundreds of MB before the first byte (the
    # memory says it; how long the first byte took would depend on this machine's load).
    assert grown < 30, f"the engine grew by {grown:.0f} MB"
    # The client left: the engine stops making tokens, though none waits between them.
    wait_until(
        lambda: engine.metric("num_requests_running") == 0,
        60,
        "the engine stopping the stream its client left",
    )
    assert engine.metric("generation_tokens_total") < 30_000_000


def test_odd_bodies_get_4xx_and_odd_text_is_text(engines: list[Engine], tmp_path: Path) -> None:
    engines.append(Engine(tmp_path))
    url = f"{engines[0].url}/v1/chat/completions"
    deep = b'{"model": "%s", "x": ' % MODEL.encode() + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert httpx.post(url, content=deep).status_code == 400
    for max_tokens in (True, 0, 1.5, "3"):
        body = {"model": MODEL, "messages": HELLO, "max_tokens": max_tokens}
        assert httpx.post(url, json=body).status_code == 400, max_tokens
    assert httpx.post(url, json={"model": "m" * 100_000, "messages": HELLO}).status_code == 404
    assert len(httpx.post(url, json={"model": "m" * 100_000, "messages": HELLO}).content) < 1000

    # A lone surrogate, content parts of other types, stream options of the wrong shape:
    # the engine answers, without a codec's error or a crash.
    lone = b'{"model": "%s", "messages": [{"role": "user", "content": "a \\ud800"}]}'
    answer = httpx.post(url, content=lone % MODEL.encode())
    assert answer.status_code == 200, answer.text
    parts = [{"role": "user", "content": [{"type": "text", "text": 5}, {"text": None}]}]
    assert httpx.post(url, json={"model": MODEL, "messages": parts}).status_code == 200
    streamed = {"model": MODEL, "messages": HELLO, "stream": True, "stream_options": [1]}
    answer = httpx.post(url, json=streamed)
    assert answer.status_code == 200 and answer.text.rstrip().endswith("data: [DONE]")
    embedded = b'{"model": "%s", "input": ["\\udfff", "%s"]}' % (MODEL.encode(), b"x" * 5000)
    answer = httpx.post(f"{engines[0].url}/v1/embeddings", content=embedded)
    assert answer.status_code == 200, answer.text
    assert [len(d["embedding"]) for d in json.loads(answer.content)["data"]] == [384, 384]
    # Token ids, as vLLM takes them: one token each.
    ids = httpx.post(f"{engines[0].url}/v1/embeddings", json={"model": MODEL, "input": [[1, 2, 3]]})
    assert ids.status_code == 200 and ids.json()["usage"]["prompt_tokens"] == 3
