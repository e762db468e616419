"""Provider credentials of the current organization. Nothing commits; reads are masked.

Saving checks the values first when they are complete (a partial update is merged with
what is stored): refused, nothing is stored; accepted, they are stored with the record
of the check; not checkable now (the orchestrator or the provider away), they are
stored unverified and `CMD:CHECK_CREDENTIALS` asks the orchestrator to check them when
it can.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.errors import ApiError, excerpts, not_found
from inventiv_api.provider_settings import verification
from inventiv_api.provider_settings.schemas import ProviderConfigStatus, ProviderSettingsOut
from inventiv_api.provider_settings.verification import Verdict
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
    configured = not missing and bool(clear)
    updated_at = max((r.updated_at for r in rows), default=None)
    checked = await verification.state(
        session,
        organization_id=org_id,
        provider=provider.code,
        configured=configured,
        changed_at=updated_at,
    )
    return ProviderSettingsOut(
        provider=provider.code,
        configured=configured,
        missing=missing,
        values={k: mask(v) for k, v in clear.items()},
        updated_at=updated_at,
        verification=checked.verification,
        last_verified_at=checked.last_verified_at,
    )


def _validate(provider: Provider, values: dict[str, str | None]) -> None:
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


Check = Callable[[dict[str, str]], Awaitable[Verdict]]


@dataclass(frozen=True)
class Saved:
    fields: list[str]  # the names the update gave, never values
    # None: the values are incomplete, so nothing was checked.
    verdict: Verdict | None

    @property
    def refused(self) -> bool:
        return self.verdict is not None and self.verdict.valid is False

    @property
    def pending(self) -> bool:
        return self.verdict is not None and self.verdict.valid is None


async def save(
    *,
    session: AsyncSession,
    keyring: KeyRing,
    org_id: uuid.UUID,
    user_id: uuid.UUID,
    provider: Provider,
    values: dict[str, str | None],
    check: Check,
) -> Saved:
    """Check, then store (or not): see the module's docstring. A refusal is recorded,
    not raised, so the route can commit its record before answering 422."""
    _validate(provider, values)
    try:
        stored = await creds.read(
            session=session, keyring=keyring, org_id=org_id, provider_id=provider.id
        )
    except DecryptionError:
        # Values sealed with a key no longer configured: what is given replaces them,
        # and the fields it leaves out go (they could never be read again).
        stored = {}
        unreadable = await creds.rows_of(session, org_id, provider.id)
        forgotten: dict[str, str | None] = {row.key: None for row in unreadable}
        values = forgotten | values
    merged = dict(stored)
    for key, value in values.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    fields = sorted(values)
    verdict = None if _missing(provider.code, set(merged)) else await check(merged)
    if verdict is not None and verdict.valid is False:
        verification.record(
            session,
            organization_id=org_id,
            user_id=user_id,
            provider=provider.code,
            verdict=verdict,
            stored=merged == stored,  # re-checking what is stored says about it
        )
        return Saved(fields, verdict)
    await creds.write(
        session=session, keyring=keyring, org_id=org_id, provider_id=provider.id, values=values
    )
    if verdict is not None and verdict.valid:
        verification.record(
            session,
            organization_id=org_id,
            user_id=user_id,
            provider=provider.code,
            verdict=verdict,
            stored=True,
        )
    elif verdict is not None:
        # The orchestrator checks them when it hears this, and logs the outcome.
        publish_after_commit(
            session,
            Envelope(
                type=CMD_CHECK_CREDENTIALS,
                organization_id=org_id,
                payload={"provider": provider.code},
            ),
        )
    return Saved(fields, verdict)


def refused_error(provider: Provider, verdict: Verdict) -> ApiError:
    return ApiError(
        422,
        "credentials_refused",
        f"{provider.name} credentials refused, nothing was saved: {verdict.reason}",
        details={"provider": provider.code, "cause": verdict.code},
    )


async def config_status(*, session: AsyncSession, org_id: uuid.UUID) -> list[ProviderConfigStatus]:
    providers = await session.scalars(select(Provider).order_by(Provider.code))
    statuses = []
    for provider in providers:
        if provider.code not in creds.CREDENTIAL_FIELDS:
            continue
        rows = await creds.rows_of(session, org_id, provider.id)
        present = {row.key for row in rows}
        missing = _missing(provider.code, present)
        # The mock provider needs nothing to work.
        configured = not missing and (bool(present) or provider.code == "mock")
        checked = await verification.state(
            session,
            organization_id=org_id,
            provider=provider.code,
            configured=configured,
            changed_at=max((r.updated_at for r in rows), default=None),
        )
        statuses.append(
            ProviderConfigStatus(
                provider=provider.code,
                name=provider.name,
                configured=configured,
                missing=missing,
                verification=checked.verification,
                verified=checked.verification == "verified",
                verification_reason=checked.reason,
                last_verified_at=checked.last_verified_at,
            )
        )
    return statuses
