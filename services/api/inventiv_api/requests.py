"""Facts about the HTTP request that services record with what they do."""

from __future__ import annotations

from fastapi import Request


def correlation_id(request: Request) -> str | None:
    """The caller's `X-Request-Id`, kept with action logs and commands (64 characters)."""
    return (request.headers.get("x-request-id") or "")[:64] or None
