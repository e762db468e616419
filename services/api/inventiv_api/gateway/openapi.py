"""The gateway's routes in the api's OpenAPI document.

/v1/* is served outside FastAPI's routing, so FastAPI cannot describe it: its paths are
written here by hand and merged into the generated spec by the app factory. Every
status the gateway itself can answer is listed, each with OpenAI's error envelope (the
schema is written out in each answer: these paths are merged without components)."""

from __future__ import annotations

from typing import Any

from inventiv_api.gateway.fields import request_schema

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string", "description": "for a person to read"},
                "type": {
                    "type": "string",
                    "examples": ["invalid_request_error", "authentication_error"],
                },
                "param": {
                    "type": ["string", "null"],
                    "description": "the request field at fault, if one is",
                },
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}

# Every refusal, and on which kind of route it can happen.
ERRORS: dict[str, tuple[str, bool]] = {  # status -> (when, only with a body)
    "400": (
        "the body is not a JSON object of the endpoint's fields, with their types and "
        "ranges (OpenAI's), tokens and prompt within the model's context length; or the "
        "engine's own refusal, relayed",
        True,
    ),
    "401": ("missing, bad or revoked credentials", False),
    "403": ("no workspace selected, or the API key may not use this model", False),
    "404": ("unknown model", True),
    "405": ("another method than the path's (see Allow)", False),
    "413": ("the body is larger than MAX_BODY_BYTES", True),
    "415": ("the body is declared as something else than application/json in UTF-8", True),
    "429": ("over the API key's requests or tokens per minute (see Retry-After)", True),
    "500": ("an unforeseen failure of the gateway (or the engine's own 500, relayed)", False),
    "502": ("the engine failed", True),
    "503": (
        "no ready instance serves the model, or the platform's database is unreachable "
        "for a caller not seen lately (see Retry-After)",
        False,
    ),
}


def _error(status: str, description: str) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": ERROR_SCHEMA}},
    }
    if status in ("429", "503"):
        answer["headers"] = RETRY_AFTER
    elif status == "405":
        answer["headers"] = {
            "Allow": {"description": "the method the path answers", "schema": {"type": "string"}}
        }
    return answer


def _operation(summary: str, path: str | None, answer: dict[str, Any]) -> dict[str, Any]:
    """One operation: `path` is the endpoint whose JSON body it takes (None: no body)."""
    body = path is not None
    operation: dict[str, Any] = {
        "tags": ["openai-compatible"],
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {
            "200": answer,
            **{
                status: _error(status, when)
                for status, (when, body_only) in ERRORS.items()
                if body or not body_only
            },
        },
    }
    if path is not None:
        # Any other status is the engine's own answer (vLLM's 422, say), relayed.
        operation["responses"]["default"] = {
            "description": "the engine's own answer, relayed unchanged",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": request_schema(path)}},
        }
    return operation


MODELS = {
    "type": "object",
    "required": ["object", "data"],
    "properties": {
        "object": {"type": "string", "const": "list"},
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "object", "created", "owned_by"],
                "properties": {
                    "id": {"type": "string"},
                    "object": {"type": "string", "const": "model"},
                    "created": {"type": "integer"},
                    "owned_by": {"type": "string"},
                },
            },
        },
    },
}
ENGINE_ANSWER = {
    "description": "the engine's answer, unchanged: JSON, or server-sent events if streamed",
    "headers": {
        "x-request-id": {
            "description": "the answer's usage record (request_id in finops.inference_usage)",
            "schema": {"type": "string"},
        }
    },
    "content": {
        "application/json": {"schema": {"type": "object"}},
        "text/event-stream": {},  # OpenAI's chunks, `data: {...}` events ending in [DONE]
    },
}
OPENAPI_PATHS: dict[str, Any] = {
    "/v1/models": {
        "get": _operation(
            "Models the caller can use now",
            None,
            {
                "description": "the models the caller can use now",
                "content": {"application/json": {"schema": MODELS}},
            },
        )
    },
    "/v1/chat/completions": {
        "post": _operation("Chat completion (JSON or SSE)", "/v1/chat/completions", ENGINE_ANSWER)
    },
    "/v1/completions": {
        "post": _operation("Text completion (JSON or SSE)", "/v1/completions", ENGINE_ANSWER)
    },
    "/v1/embeddings": {"post": _operation("Embeddings", "/v1/embeddings", ENGINE_ANSWER)},
}
