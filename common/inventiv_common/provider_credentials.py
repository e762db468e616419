"""Reading and writing encrypted provider credentials (`provider_settings` rows).

Shared by the api (which stores them) and the orchestrator (which uses them to call
the provider). Each value is sealed with the organization, provider and field bound
in as associated data.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_common.crypto import KeyRing, Sealed
from inventiv_common.db.models import ProviderSetting

# The fields each provider's credentials have; anything else is refused.
CREDENTIAL_FIELDS: dict[str, dict[str, bool]] = {
    # field -> required
    "scaleway": {
        "access_key": True,
        "secret_key": True,
        "project_id": True,
        "organization_id": False,
        "default_zone": False,
    },
    "mock": {"api_token": False},
}


def associated_data(org_id: uuid.UUID, provider_id: uuid.UUID, key: str) -> str:
    return f"provider_settings/{org_id}/{provider_id}/{key}"


async def rows_of(
    session: AsyncSession, org_id: uuid.UUID, provider_id: uuid.UUID
) -> list[ProviderSetting]:
    rows = await session.scalars(
        select(ProviderSetting)
        .where(
            ProviderSetting.organization_id == org_id, ProviderSetting.provider_id == provider_id
        )
        .order_by(ProviderSetting.key)
    )
    return list(rows)


async def write(
    *,
    session: AsyncSession,
    keyring: KeyRing,
    org_id: uuid.UUID,
    provider_id: uuid.UUID,
    values: dict[str, str | None],
) -> None:
    """Set (or, for None, remove) each given field; other fields are left as they are."""
    existing = {row.key: row for row in await rows_of(session, org_id, provider_id)}
    for key, value in values.items():
        row = existing.get(key)
        if value is None:
            if row is not None:
                await session.delete(row)
            continue
        sealed = keyring.seal(value, associated_data(org_id, provider_id, key))
        if row is None:
            session.add(
                ProviderSetting(
                    organization_id=org_id,
                    provider_id=provider_id,
                    key=key,
                    value_encrypted=sealed.blob,
                    key_id=sealed.key_id,
                )
            )
        else:
            row.value_encrypted = sealed.blob
            row.key_id = sealed.key_id
    await session.flush()


async def read(
    *, session: AsyncSession, keyring: KeyRing, org_id: uuid.UUID, provider_id: uuid.UUID
) -> dict[str, str]:
    """Every field in clear. Raises DecryptionError when a value cannot be opened."""
    return {
        row.key: keyring.open(
            Sealed(row.key_id, row.value_encrypted),
            associated_data(org_id, provider_id, row.key),
        )
        for row in await rows_of(session, org_id, provider_id)
    }


async def reseal_all(*, session: AsyncSession, keyring: KeyRing) -> int:
    """Re-encrypt every value not sealed by the active key; returns how many changed."""
    rows = await session.scalars(
        select(ProviderSetting)
        .where(ProviderSetting.key_id != keyring.active_key_id)
        .with_for_update()
    )
    changed = 0
    for row in rows:
        aad = associated_data(row.organization_id, row.provider_id, row.key)
        clear = keyring.open(Sealed(row.key_id, row.value_encrypted), aad)
        sealed = keyring.seal(clear, aad)
        row.value_encrypted, row.key_id = sealed.blob, sealed.key_id
        changed += 1
    await session.flush()
    return changed
