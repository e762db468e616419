"""Provider credentials of the current organization. Nothing commits; reads are masked."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.errors import ApiError, excerpts, not_found
from inventiv_api.provider_settings.schemas import ProviderConfigStatus, ProviderSettingsOut
from inventiv_common import provider_credentials as creds
from inventiv_common.bus import Envelope, publish_after_commit
from inventiv_common.crypto import DecryptionError, KeyRing
from inventiv_common.db.models import Provider
from inventiv_common.messages import CMD_CHECK_CREDENTIALS

MAX_VALUE_LENGTH = 4096


def mask(value: str) -> str:
    return "••••" + (value[-4:] if len(value) >= 12 else "")


async def provider_by_code(session: AsyncSession, code: str) -> Provider:
    provider = await session.scalar(select(Provider).where(Provider.code == code))
    if provider is None or code not in creds.CREDENTIAL_FIELDS:
        raise not_found("provider")
    return provider


def _missing(provider_code: str, present: set[str]) -> list[str]:
    fields = creds.CREDENTIAL_FIELDS[provider_code]
    return sorted(k for k, required in fields.items() if required and k not in present)


async def describe(
    *, session: AsyncSession, keyring: KeyRing, org_id: uuid.UUID, provider: Provider
) -> ProviderSettingsOut:
    rows = await creds.rows_of(session, org_id, provider.id)
    try:
        clear = await creds.read(
            session=session, keyring=keyring, org_id=org_id, provider_id=provider.id
        )
    except DecryptionError as exc:
        raise ApiError(
            409,
            "credentials_unreadable",
            f"stored credentials cannot be decrypted with the configured key ({exc})",
        ) from None
    missing = _missing(provider.code, set(clear))
    return ProviderSettingsOut(
        provider=provider.code,
        configured=not missing and bool(clear),
        missing=missing,
        values={k: mask(v) for k, v in clear.items()},
        updated_at=max((r.updated_at for r in rows), default=None),
    )


async def update(
    *,
    session: AsyncSession,
    keyring: KeyRing,
    org_id: uuid.UUID,
    provider: Provider,
    values: dict[str, str | None],
) -> list[str]:
    allowed = creds.CREDENTIAL_FIELDS[provider.code]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ApiError(
            422,
            "unknown_fields",
            f"{provider.code} credentials have no field(s): {excerpts(unknown)}; "
            f"known: {', '.join(sorted(allowed))}",
        )
    for key, value in values.items():
        if value is not None and not (0 < len(value) <= MAX_VALUE_LENGTH):
            raise ApiError(422, "validation_error", f"{key} must be 1 to {MAX_VALUE_LENGTH} chars")
    await creds.write(
        session=session, keyring=keyring, org_id=org_id, provider_id=provider.id, values=values
    )
    # The orchestrator, which holds the providers, checks them and logs the outcome.
    publish_after_commit(
        session,
        Envelope(
            type=CMD_CHECK_CREDENTIALS, organization_id=org_id, payload={"provider": provider.code}
        ),
    )
    return sorted(values)


async def config_status(*, session: AsyncSession, org_id: uuid.UUID) -> list[ProviderConfigStatus]:
    providers = await session.scalars(select(Provider).order_by(Provider.code))
    statuses = []
    for provider in providers:
        if provider.code not in creds.CREDENTIAL_FIELDS:
            continue
        present = {row.key for row in await creds.rows_of(session, org_id, provider.id)}
        missing = _missing(provider.code, present)
        statuses.append(
            ProviderConfigStatus(
                provider=provider.code,
                name=provider.name,
                # The mock provider needs nothing to work.
                configured=not missing and (bool(present) or provider.code == "mock"),
                missing=missing,
            )
        )
    return statuses
