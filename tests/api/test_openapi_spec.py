"""What the OpenAPI document promises, checked one case at a time (the fuzzing in
test_fuzz.py checks it at large): a 405 names every method of its path, amounts and
whole numbers are read as the document says, and the document declares every answer."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.api.conftest import LiveApi, World


def test_a_405_names_every_method_of_its_path(api: LiveApi) -> None:
    with httpx.Client(base_url=api.base_url) as client:
        # One route per method on these paths: Starlette would name only the first.
        for method, path, allowed in [
            ("OPTIONS", "/models", "GET, POST"),
            ("PATCH", "/finops/budget", "DELETE, GET, PUT"),
            ("OPTIONS", f"/instances/{uuid.uuid4()}", "DELETE, GET"),
        ]:
            answer = client.request(method, path)
            assert answer.status_code == 405, (method, path)
            assert answer.headers["allow"] == allowed, (method, path)
            assert answer.json()["error"]["code"] == "method_not_allowed"


def test_a_body_too_large_is_a_declared_413_even_where_none_is_read(world: World) -> None:
    document = httpx.get(f"{world.api.base_url}/api-docs/openapi.json").json()
    big = b"x" * 2_000_000  # over the default MAX_BODY_BYTES (1 MiB)
    for method, path in [("delete", "/api_keys/{key_id}"), ("post", "/reconcile")]:
        assert "413" in document["paths"][path][method]["responses"], (method, path)
        answer = world["owner"].request(
            method.upper(), path.format(key_id=uuid.uuid4()), content=big
        )
        assert answer.status_code == 413, (method, path, answer.text[:200])
        assert answer.json()["error"]["code"] == "payload_too_large"


def test_the_document_declares_every_answer(api: LiveApi) -> None:
    document = httpx.get(f"{api.base_url}/api-docs/openapi.json").json()
    paths = document["paths"]
    assert list(paths["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
    assert {"401", "429"} <= set(paths["/auth/login"]["post"]["responses"])
    register = paths["/internal/worker/register"]["post"]
    assert {"401", "409", "502"} <= set(register["responses"])
    assert register["requestBody"]["required"] is True
    for path, operations in paths.items():
        if path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            error = operation["responses"]["400"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/Error"}, (method, path)
    schemas = document["components"]["schemas"]
    price = schemas["ModelCreate"]["properties"]["price_per_1k_input_tokens_eur"]
    assert "\\d" not in str(price) and "[0-9]" in str(price)
    assert schemas["InvitationCreate"]["properties"]["email"]["format"] == "email"


def _model(**fields: Any) -> dict[str, Any]:
    return {"name": "Spec", "model_id": f"spec/{uuid.uuid4().hex[:8]}", **fields}


@pytest.mark.parametrize(
    "fields",
    [
        {"price_per_1k_input_tokens_eur": 0.5},  # a binary fraction is not an amount
        {"price_per_1k_input_tokens_eur": "\u0663"},  # ARABIC-INDIC DIGIT THREE
        {"price_per_1k_input_tokens_eur": "1e3"},
        {"price_per_1k_input_tokens_eur": " 1"},
        {"price_per_1k_input_tokens_eur": "-1"},
        {"price_per_1k_input_tokens_eur": "0.0000001"},
        {"required_vram_gb": True},
        {"required_vram_gb": "8"},
        {"required_vram_gb": 8.5},
    ],
)
def test_what_the_document_refuses_is_refused(world: World, fields: dict[str, Any]) -> None:
    answer = world["admin"].post("/models", json=_model(**fields))
    assert answer.status_code == 422, answer.text


@pytest.mark.parametrize(
    ("fields", "price", "vram"),
    [
        ({"price_per_1k_input_tokens_eur": "12.50", "required_vram_gb": 8}, "12.500000", 8),
        ({"price_per_1k_input_tokens_eur": 3, "required_vram_gb": 8.0}, "3.000000", 8),
        ({"price_per_1k_input_tokens_eur": 3.0}, "3.000000", 0),
    ],
)
def test_what_the_document_accepts_is_accepted(
    world: World, fields: dict[str, Any], price: str, vram: int
) -> None:
    answer = world["admin"].post("/models", json=_model(**fields))
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert (created["price_per_1k_input_tokens_eur"], created["required_vram_gb"]) == (price, vram)
    assert world["admin"].delete(f"/models/{created['id']}").status_code == 204


def test_a_budget_is_above_zero(world: World) -> None:
    for amount in ("0", "0.00", 0, "0.001"):
        refused = world["owner"].put("/finops/budget", json={"monthly_budget_eur": amount})
        assert refused.status_code == 422, (amount, refused.text)
    # Above zero, however small: "0.01" and "0.5" are budgets.
    for amount in ("0.01", "0.5"):
        kept = world["owner"].put("/finops/budget", json={"monthly_budget_eur": amount})
        assert kept.status_code == 200, (amount, kept.text)
    assert world["owner"].delete("/finops/budget").status_code in (200, 204)
