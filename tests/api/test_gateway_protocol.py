"""The gateway's HTTP manners against the live api: JSON bodies only (as the official
client sends them), 405 with Allow for another method than a path's, every status it
can answer declared in the OpenAPI document with OpenAI's error envelope; and each
model's context length, known to the route table and given to every model."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from inventiv_api.gateway.routing import RouteTable
from inventiv_common.db.models import Model
from tests.api.conftest import World
from tests.api.test_gateway_hostile_input import CHAT, COMPLETION, EMBEDDING, refused
from tests.api.test_gateway_routing import KEYRING, Fleet
from tests.support.mock_engine import MOCK_MODEL
from tests.support.served_gateway import ServedGateway, served_gateway


@pytest.fixture(scope="module")
def served(
    world: World, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedGateway]:
    tmp = tmp_path_factory.mktemp("protocol")
    with served_gateway(world.api.base_url, world["owner"], database_url, tmp) as gateway:
        yield gateway


@pytest.mark.parametrize("path", ["/chat/completions", "/completions", "/embeddings"])
def test_only_bodies_sent_as_json_are_taken(served: ServedGateway, path: str) -> None:
    body = {"/chat/completions": CHAT, "/completions": COMPLETION, "/embeddings": EMBEDDING}[path]
    for declared in (
        *("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""),
        # JSON in another encoding than the UTF-8 it is read as.
        *("application/json; charset=utf-16", 'application/json; charset="latin-1"'),
    ):
        error = refused(served.post(path, body, content_type=declared), 415)
        assert error["code"] == "unsupported_media_type"
    # JSON with or without a charset, or undeclared, is taken.
    for declared in (
        *("application/json; charset=utf-8", "Application/JSON;charset=UTF-8", None),
        'application/json; charset="utf8"',
    ):
        answer = served.post(path, body, content_type=declared)
        assert answer.status_code == 200, answer.text
    # The official client declares its bodies as JSON and is served.
    ai = served.ai().with_raw_response
    sent = [
        ai.chat.completions.create(model=MOCK_MODEL, messages=CHAT["messages"], max_tokens=1),  # type: ignore[arg-type]
        ai.completions.create(model=MOCK_MODEL, prompt="x", max_tokens=1),
        ai.embeddings.create(model=MOCK_MODEL, input="x"),
    ]
    assert [r.status_code for r in sent] == [200] * 3
    assert [r.http_request.headers["content-type"] for r in sent] == ["application/json"] * 3


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("TRACE", "/v1/chat/completions", "POST"),
        ("GET", "/v1/chat/completions", "POST"),
        ("PUT", "/v1/completions", "POST"),
        ("DELETE", "/v1/embeddings", "POST"),
        ("OPTIONS", "/v1/embeddings", "POST"),
        ("POST", "/v1/models", "GET"),
        ("TRACE", "/v1/models", "GET"),
    ],
)
@pytest.mark.parametrize("authenticated", [True, False])
def test_another_method_than_the_path_s_is_a_405_with_allow(
    served: ServedGateway, method: str, path: str, allow: str, authenticated: bool
) -> None:
    headers = {"Authorization": f"Bearer {served.key}"} if authenticated else {}
    answer = served.http.request(method, path, headers=headers)
    refused(answer, 405)
    assert answer.headers["allow"] == allow


def test_an_unknown_path_is_a_404_in_openai_s_envelope(served: ServedGateway) -> None:
    answer = served.http.get("/v1/" + "nope" * 1000)
    assert refused(answer, 404)["code"] == "not_found"


def test_every_status_is_declared_with_the_error_envelope(served: ServedGateway) -> None:
    paths = served.http.get("/api-docs/openapi.json").json()["paths"]
    everywhere = {"200", "401", "403", "405", "500", "503"}
    with_body = everywhere | {"400", "404", "413", "415", "429", "502"}
    expected = {
        ("/v1/models", "get"): everywhere,
        ("/v1/chat/completions", "post"): with_body,
        ("/v1/completions", "post"): with_body,
        ("/v1/embeddings", "post"): with_body,
    }
    for (path, method), statuses in expected.items():
        responses = paths[path][method]["responses"]
        assert statuses <= set(responses), (path, statuses - set(responses))
        for status in statuses - {"200"}:
            schema = responses[status]["content"]["application/json"]["schema"]
            error = schema["properties"]["error"]
            assert set(error["required"]) == {"message", "type", "param", "code"}
        assert "Allow" in responses["405"]["headers"]
        assert "Retry-After" in responses["503"]["headers"]
        if method == "post":  # the body's schema: what the gateway checks, declared
            schema = paths[path][method]["requestBody"]["content"]["application/json"]["schema"]
            assert schema["required"][0] == "model" and len(schema["required"]) == 2
            assert schema["properties"]["model"]["maxLength"] == 300


async def test_the_route_table_knows_each_model_s_context_length(engine: AsyncEngine) -> None:
    fleet = Fleet(engine)
    org = await fleet.organization()
    await fleet.instance(org)
    table = RouteTable(fleet.sessions, KEYRING)
    await table.refresh()
    assert table.context_length(org, MOCK_MODEL) == 8192
    assert table.context_length(org, "no/such-model") is None

    async def set_length(length: int) -> None:
        async with fleet.sessions() as session:
            await session.execute(
                update(Model).where(Model.model_id == MOCK_MODEL).values(context_length=length)
            )
            await session.commit()

    await set_length(100)
    try:
        await table.refresh()  # instances already routed take the model's new length too
        assert table.context_length(org, MOCK_MODEL) == 100
    finally:
        await set_length(8192)


def test_a_model_created_without_a_context_length_has_one(world: World) -> None:
    owner = world["owner"]
    model_id = f"private/{uuid.uuid4().hex[:8]}"
    created = owner.post("/models", json={"name": "No length", "model_id": model_id})
    assert created.status_code == 201, created.text
    assert created.json()["context_length"] == 8192
    cleared = owner.put(f"/models/{created.json()['id']}", json={"context_length": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["context_length"] == 8192
    assert owner.delete(f"/models/{created.json()['id']}").status_code == 204
