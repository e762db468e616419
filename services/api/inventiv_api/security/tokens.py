"""Session tokens: a signed JWT naming a `user_sessions` row, checked on every request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

ALGORITHM = "HS256"
ISSUER = "inventiv-agents"


@dataclass(frozen=True)
class SessionClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID


def issue(secret: str, claims: SessionClaims, ttl_seconds: int, now: datetime | None = None) -> str:
    issued = now or datetime.now(UTC)
    payload = {
        "iss": ISSUER,
        "sub": str(claims.user_id),
        "sid": str(claims.session_id),
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(seconds=ttl_seconds)).timestamp()),
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def verify(secret: str, token: str) -> SessionClaims | None:
    """The claims of a valid, unexpired token of ours; None for anything else."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "sid", "iss"]},
        )
        return SessionClaims(uuid.UUID(payload["sub"]), uuid.UUID(payload["sid"]))
    except (jwt.PyJWTError, ValueError, KeyError, TypeError):
        return None
