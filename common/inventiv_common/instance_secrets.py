"""The two secrets of an instance: the worker's bootstrap secret and the engine key.

Both are generated once, sealed with the application key ring (bound to the instance
id), and opened when needed: by the orchestrator to hand them to the provider, by the
gateway to add the engine key upstream. The bootstrap secret's hash is what
registration checks.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from inventiv_common.crypto import KeyRing, Sealed
from inventiv_common.db.models import Instance


@dataclass(frozen=True)
class InstanceSecrets:
    bootstrap_secret: str
    engine_key: str


def _aad(instance: Instance, which: str) -> str:
    return f"instance/{instance.id}/{which}"


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def ensure(instance: Instance, keyring: KeyRing) -> InstanceSecrets:
    """The instance's secrets, generating and sealing them on first use."""
    if instance.bootstrap_secret_encrypted is None or instance.engine_key_encrypted is None:
        bootstrap, engine = "wb_" + secrets.token_urlsafe(32), "ek_" + secrets.token_urlsafe(32)
        sealed_bootstrap = keyring.seal(bootstrap, _aad(instance, "bootstrap"))
        sealed_engine = keyring.seal(engine, _aad(instance, "engine"))
        instance.bootstrap_secret_encrypted = sealed_bootstrap.blob
        instance.engine_key_encrypted = sealed_engine.blob
        instance.secrets_key_id = sealed_bootstrap.key_id
        instance.bootstrap_secret_hash = secret_hash(bootstrap)
        return InstanceSecrets(bootstrap, engine)
    return open_secrets(instance, keyring)


def open_secrets(instance: Instance, keyring: KeyRing) -> InstanceSecrets:
    assert instance.bootstrap_secret_encrypted and instance.engine_key_encrypted
    key_id = instance.secrets_key_id or keyring.active_key_id
    return InstanceSecrets(
        keyring.open(
            Sealed(key_id, instance.bootstrap_secret_encrypted), _aad(instance, "bootstrap")
        ),
        keyring.open(Sealed(key_id, instance.engine_key_encrypted), _aad(instance, "engine")),
    )


def hash_matches(expected: str | None, presented: str) -> bool:
    """Whether `presented` is the secret whose stored hash is `expected` (in constant time)."""
    return expected is not None and hmac.compare_digest(expected, secret_hash(presented))
