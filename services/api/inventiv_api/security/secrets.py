"""Opaque secrets handed to people once (API keys, invitation tokens): made and hashed.

They carry 256 bits of randomness, so a plain SHA-256 is the right store: lookups
stay a single index hit, and a leaked table reveals nothing usable.
"""

from __future__ import annotations

import hashlib
import secrets

API_KEY_PREFIX = "ia_"
DISPLAY_PREFIX_LENGTH = 12


def new_token(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def display_prefix(token: str) -> str:
    return token[:DISPLAY_PREFIX_LENGTH]
