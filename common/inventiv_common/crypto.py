"""Application-level encryption of provider credentials: AES-256-GCM with key ids.

PROVIDER_SETTINGS_KEY is either one passphrase, or a rotation list such as
`v2:newsecret,oldsecret`: the first key encrypts, every listed key can decrypt. An
entry without `id:` gets an id derived from the secret (so it must not contain `:`),
which is also the id a lone passphrase has. Each row stores the id of the key that
sealed it, so rotating means adding a new key in front, re-sealing the rows
(`inventiv rotate-provider-key`), then dropping the old key. The associated data
binds a ciphertext to its row, so a value copied to another organization or field
does not decrypt.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12
_HKDF_SALT = b"inventiv-agents/provider-settings/v1"


class DecryptionError(Exception):
    """The value cannot be opened: unknown key id, wrong key, or tampered data."""


def _derive(secret: str, key_id: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=key_id.encode()).derive(
        secret.encode()
    )


def _implicit_key_id(secret: str) -> str:
    # A fingerprint, not the key: lets a row say which key sealed it.
    return "k" + hashlib.sha256(secret.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Sealed:
    key_id: str
    blob: bytes  # nonce || ciphertext || tag


class KeyRing:
    def __init__(self, spec: str) -> None:
        entries: list[tuple[str, str]] = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            key_id, sep, secret = part.partition(":")
            if not sep:
                key_id, secret = _implicit_key_id(part), part
            if not key_id or not secret:
                raise ValueError("PROVIDER_SETTINGS_KEY: each entry is `id:secret`")
            entries.append((key_id, secret))
        if not entries:
            raise ValueError("PROVIDER_SETTINGS_KEY is empty")
        self.active_key_id = entries[0][0]
        self._keys = {key_id: AESGCM(_derive(secret, key_id)) for key_id, secret in entries}

    def seal(self, plaintext: str, associated_data: str) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        aead = self._keys[self.active_key_id]
        blob = nonce + aead.encrypt(nonce, plaintext.encode(), associated_data.encode())
        return Sealed(self.active_key_id, blob)

    def open(self, sealed: Sealed, associated_data: str) -> str:
        aead = self._keys.get(sealed.key_id)
        if aead is None:
            raise DecryptionError(f"sealed with key {sealed.key_id!r}, which is not configured")
        nonce, body = sealed.blob[:NONCE_BYTES], sealed.blob[NONCE_BYTES:]
        try:
            return aead.decrypt(nonce, body, associated_data.encode()).decode()
        except InvalidTag:
            raise DecryptionError(
                f"value sealed with key {sealed.key_id!r} does not open"
            ) from None
