"""The official `openai` client, unchanged, against our gateway in front of a real
deployment (api, orchestrator, worker agent and mock engine as processes)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import openai
import pytest

from tests.lifecycle.conftest import Platform
from tests.support.mock_engine import MOCK_MODEL
from tests.support.waiting import wait_until


def api_key(platform: Platform, **fields: object) -> str:
    created = platform.admin.post("/api_keys", json={"name": "gateway test", **fields})
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


def client(platform: Platform, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{platform.api.base_url}/v1", api_key=key, max_retries=0)


async def engine_port(platform: Platform, instance_id: str) -> int:
    conn = await asyncpg.connect(platform.env["DATABASE_URL"])
    try:
        port = await conn.fetchval(
            "SELECT worker_engine_port FROM instances WHERE id = $1", uuid.UUID(instance_id)
        )
    finally:
        await conn.close()
    return int(port)


@pytest.fixture
def deployed(platform: Platform) -> tuple[Platform, str]:
    instance_id = platform.deploy()["id"]
    platform.wait_status(instance_id, "ready")
    return platform, instance_id


def test_models_chat_streams_completions_and_embeddings(deployed: tuple[Platform, str]) -> None:
    serving, _ = deployed
    ai = client(serving, api_key(serving))
    assert [m.id for m in ai.models.list()] == [MOCK_MODEL]

    chat = ai.chat.completions.create(
        model=MOCK_MODEL, messages=[{"role": "user", "content": "one two three"}], max_tokens=4
    )
    assert chat.choices[0].message.content and chat.usage is not None
    assert (chat.usage.prompt_tokens, chat.usage.completion_tokens) == (3, 4)

    # A stream whose client did not ask for usage shows none, though the engine was
    # asked for it (the gateway meters every stream).
    chunks = list(
        ai.chat.completions.create(
            model=MOCK_MODEL,
            messages=[{"role": "user", "content": "a b"}],
            max_tokens=5,
            stream=True,
        )
    )
    assert len(chunks) == 5
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    # Asked for, usage comes last, as OpenAI sends it.
    with_usage = list(
        ai.chat.completions.create(
            model=MOCK_MODEL,
            messages=[{"role": "user", "content": "a b"}],
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert with_usage[-1].choices == [] and with_usage[-1].usage is not None
    assert with_usage[-1].usage.completion_tokens == 5
    # The running usage the gateway asked for on every chunk stays hidden too...
    assert all(c.usage is None for c in with_usage[:-1])
    # ...unless the client asked for it as well (vLLM's continuous usage stats).
    running = list(
        ai.chat.completions.create(
            model=MOCK_MODEL,
            messages=[{"role": "user", "content": "a b"}],
            max_tokens=3,
            stream=True,
            stream_options={"include_usage": True, "continuous_usage_stats": True},
        )
    )
    assert [c.usage.completion_tokens for c in running if c.usage] == [1, 2, 3, 3]

    completion = ai.completions.create(model=MOCK_MODEL, prompt="x y z w", max_tokens=2)
    assert completion.usage is not None and completion.usage.prompt_tokens == 4

    embeddings = ai.embeddings.create(model=MOCK_MODEL, input=["one", "two words"])
    assert len(embeddings.data) == 2 and embeddings.usage.prompt_tokens == 3

    # The endpoints are in the api's OpenAPI spec, though served outside FastAPI routing.
    paths = httpx.get(f"{serving.api.base_url}/api-docs/openapi.json").json()["paths"]
    assert {"/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/embeddings"} <= set(paths)


def test_errors_have_openai_types_and_statuses(deployed: tuple[Platform, str]) -> None:
    serving, instance_id = deployed
    key = api_key(serving)
    with pytest.raises(openai.AuthenticationError):
        client(serving, "ia_not-a-real-key").models.list()
    with pytest.raises(openai.NotFoundError):
        client(serving, key).chat.completions.create(
            model="nobody/no-such-model", messages=[{"role": "user", "content": "x"}]
        )
    narrow = client(serving, api_key(serving, allowed_models=["BAAI/bge-m3"]))
    assert list(narrow.models.list()) == []
    with pytest.raises(openai.PermissionDeniedError):
        narrow.chat.completions.create(
            model=MOCK_MODEL, messages=[{"role": "user", "content": "x"}]
        )
    malformed = httpx.post(
        f"{serving.api.base_url}/v1/chat/completions",
        content=b"{not json",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert malformed.status_code == 400
    assert malformed.json()["error"]["type"] == "invalid_request_error"

    # A key's limits, counted in Redis: requests per minute, then tokens per minute.
    two_a_minute = client(serving, api_key(serving, requests_per_minute=2))
    hello = [{"role": "user", "content": "hello"}]
    for _ in range(2):
        two_a_minute.chat.completions.create(model=MOCK_MODEL, messages=hello, max_tokens=1)
    with pytest.raises(openai.RateLimitError) as limited:
        two_a_minute.chat.completions.create(model=MOCK_MODEL, messages=hello, max_tokens=1)
    assert 1 <= int(limited.value.response.headers["retry-after"]) <= 60
    ten_tokens = client(serving, api_key(serving, tokens_per_minute=10))
    ten_tokens.chat.completions.create(model=MOCK_MODEL, messages=hello, max_tokens=10)  # 11
    with pytest.raises(openai.RateLimitError):
        ten_tokens.chat.completions.create(model=MOCK_MODEL, messages=hello, max_tokens=1)

    # A key of another organization cannot reach this organization's instance.
    outsider = serving.outsider("gateway-outsider")
    foreign = outsider.post("/api_keys", json={"name": "elsewhere"}).json()["key"]
    assert list(client(serving, foreign).models.list()) == []
    with pytest.raises(openai.InternalServerError) as refused:  # 503: nothing of theirs
        client(serving, foreign).chat.completions.create(model=MOCK_MODEL, messages=hello)
    assert refused.value.status_code == 503

    # The engine itself only answers the gateway: no engine key, no tokens.
    port = asyncio.run(engine_port(serving, instance_id))
    direct = httpx.post(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        json={"model": MOCK_MODEL, "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert direct.status_code == 401

    # Known model, nothing ready to serve it: 503 with a hint when to come back.
    switched_off = serving.admin.put(
        f"/instances/{instance_id}/activation/economic", json={"active": False}
    )
    assert switched_off.status_code == 200, switched_off.text

    # The route table is refreshed every second: switched off, it stops serving then.
    def refused() -> httpx.Response | None:
        answer = httpx.post(
            f"{serving.api.base_url}/v1/chat/completions",
            json={"model": MOCK_MODEL, "messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": f"Bearer {key}"},
        )
        return answer if answer.status_code != 200 else None

    unavailable = wait_until(refused, 60, "the switched-off instance out of the route table")
    assert unavailable.status_code == 503, unavailable.text
    assert unavailable.headers["retry-after"] == "5"


def test_every_request_is_metered_with_the_engine_s_own_token_counts(
    deployed: tuple[Platform, str],
) -> None:
    serving, instance_id = deployed
    ai = client(serving, api_key(serving))
    messages = [{"role": "user", "content": "count these five words"}]
    # Each answer names its usage record: x-request-id, with the tokens it was metered for.
    answers: dict[str, int | None] = {}
    for max_tokens in (3, 7):
        raw = ai.chat.completions.with_raw_response.create(
            model=MOCK_MODEL, messages=messages, max_tokens=max_tokens
        )
        assert raw.parse().usage.completion_tokens == max_tokens  # type: ignore[union-attr]
        answers[raw.headers["x-request-id"]] = max_tokens
    with ai.chat.completions.with_streaming_response.create(
        model=MOCK_MODEL, messages=messages, stream=True
    ) as streamed:
        assert streamed.read().endswith(b"data: [DONE]\n\n")
        answers[streamed.headers["x-request-id"]] = None
    with ai.completions.with_streaming_response.create(
        model=MOCK_MODEL,
        prompt="two words",
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},
    ) as completed:
        assert completed.read().endswith(b"data: [DONE]\n\n")
        answers[completed.headers["x-request-id"]] = 4
    raw_embeddings = ai.embeddings.with_raw_response.create(model=MOCK_MODEL, input=["a b c", "d"])
    answers[raw_embeddings.headers["x-request-id"]] = 0
    sent = 5
    assert len(answers) == sent

    async def metered() -> tuple[list[asyncpg.Record], asyncpg.Record | None, int]:
        conn = await asyncpg.connect(serving.env["DATABASE_URL"])
        try:
            rows = await conn.fetch(
                "SELECT request_id, endpoint, stream, prompt_tokens, completion_tokens, "
                "total_tokens, status, time_to_first_token_ms FROM finops.inference_usage "
                "WHERE instance_id = $1",
                uuid.UUID(instance_id),
            )
            totals = await conn.fetchrow(
                "SELECT * FROM instance_request_metrics WHERE instance_id = $1",
                uuid.UUID(instance_id),
            )
            port = await conn.fetchval(
                "SELECT worker_engine_port FROM instances WHERE id = $1", uuid.UUID(instance_id)
            )
        finally:
            await conn.close()
        return rows, totals, int(port)

    wait_until(lambda: len(asyncio.run(metered())[0]) >= sent, 60, f"{sent} usage rows")
    rows, totals, port = asyncio.run(metered())
    assert len(rows) == sent
    assert {r["request_id"] for r in rows} == set(answers)
    for row in rows:
        if answers[row["request_id"]] is not None:
            assert row["completion_tokens"] == answers[row["request_id"]]
    assert all(r["status"] == "success" for r in rows)
    assert all(r["total_tokens"] == r["prompt_tokens"] + r["completion_tokens"] for r in rows)
    assert sorted((r["endpoint"], r["stream"]) for r in rows) == [
        ("chat/completions", False),
        ("chat/completions", False),
        ("chat/completions", True),
        ("completions", True),
        ("embeddings", False),
    ]
    # What the engine itself counted, token for token.
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    engine = {
        line.split("{")[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("vllm:") and "{" in line
    }
    assert sum(r["prompt_tokens"] for r in rows) == engine["vllm:prompt_tokens_total"]
    assert sum(r["completion_tokens"] for r in rows) == engine["vllm:generation_tokens_total"]
    assert totals is not None
    assert totals["total_requests"] == sent and totals["successful_requests"] == sent
    assert totals["input_tokens"] == engine["vllm:prompt_tokens_total"]
    shown = serving.admin.get(f"/instances/{instance_id}/metrics").json()
    assert shown["total_requests"] == sent and shown["success_rate"] == 1.0
    assert shown["output_tokens"] == engine["vllm:generation_tokens_total"]
    assert shown["last_request_at"] >= shown["first_request_at"]
