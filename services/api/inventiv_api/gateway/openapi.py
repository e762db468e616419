"""The gateway's routes in the api's OpenAPI document.

/v1/* is served outside FastAPI's routing, so FastAPI cannot describe it: its paths are
written here by hand and merged into the generated spec by the app factory."""

from __future__ import annotations

from typing import Any


def _operation(summary: str, *, body: bool) -> dict[str, Any]:
    errors = {
        "400": "malformed body",
        "401": "missing, bad or revoked credentials",
        "403": "the API key may not use this model",
        "404": "unknown model",
        "429": "over the API key's requests or tokens per minute (see Retry-After)",
        "502": "the engine failed",
        "503": "no ready instance serves the model (see Retry-After)",
    }
    operation: dict[str, Any] = {
        "tags": ["openai-compatible"],
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {
            "200": {"description": "the engine's answer, unchanged (JSON or SSE)"},
            **{code: {"description": text} for code, text in errors.items()},
        },
    }
    if body:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    return operation


OPENAPI_PATHS: dict[str, Any] = {
    "/v1/models": {"get": _operation("Models the caller can use now", body=False)},
    "/v1/chat/completions": {"post": _operation("Chat completion (JSON or SSE)", body=True)},
    "/v1/completions": {"post": _operation("Text completion (JSON or SSE)", body=True)},
    "/v1/embeddings": {"post": _operation("Embeddings", body=True)},
}
