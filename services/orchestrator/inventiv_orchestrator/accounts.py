"""Which provider account acts for whom.

The Mock provider has one account: the platform's. Scaleway has the platform's own
(SCALEWAY_* settings, if set) and one per organization that saved credentials of its
own (`provider_settings`, encrypted); an organization's servers are made, watched and
deleted with its own account when it has one, else with the platform's. The loops that
look at everything a provider holds (watchdog, storage) walk every account.

Providers are built once per set of credentials and reused (a Scaleway provider holds
its SDK client and thread pool); an organization's credentials are read again after
CREDENTIALS_TTL_S, so a change through the api takes effect within that time.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventiv_common import provider_credentials as creds
from inventiv_common.crypto import DecryptionError, KeyRing
from inventiv_common.db.models import Provider, ProviderSetting
from inventiv_common.providers.base import CloudProvider
from inventiv_common.providers.scaleway.provider import ScalewayProvider, UserData
from inventiv_common.providers.scaleway.settings import ScalewaySettings

CREDENTIALS_TTL_S = 30.0
log = logging.getLogger(__name__)
SCALEWAY = "scaleway"


class NoAccount(KeyError):
    """No account of this provider can act for this organization."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no provider account"

    retryable = False
    code = "provider_not_configured"


class Accounts:
    def __init__(
        self,
        settings: ScalewaySettings,
        session_factory: async_sessionmaker[AsyncSession],
        keyring: KeyRing,
        platform: Mapping[str, CloudProvider],
        user_data: UserData,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.keyring = keyring
        self.user_data = user_data
        self._built: dict[str, ScalewayProvider] = {}
        # organization -> (read at, its Scaleway credentials or None)
        self._read: dict[uuid.UUID, tuple[float, dict[str, str] | None]] = {}
        self.platform = dict(platform)
        own = settings.platform_scaleway_credentials()
        if own is not None:
            self.platform[SCALEWAY] = self.scaleway(own)

    def scaleway(self, credentials: Mapping[str, str]) -> ScalewayProvider:
        """The provider for these credentials, built once."""
        fingerprint = hashlib.sha256(
            "\0".join(
                credentials.get(k, "")
                for k in ("access_key", "secret_key", "project_id", "default_zone")
            ).encode()
        ).hexdigest()
        built = self._built.get(fingerprint)
        if built is None:
            built = ScalewayProvider(self.settings.scaleway_config(credentials), self.user_data)
            self._built[fingerprint] = built
        return built

    async def for_organization(self, code: str, organization_id: uuid.UUID) -> CloudProvider:
        if code == SCALEWAY:
            own = await self._credentials(organization_id)
            if own is not None:
                return self.scaleway(own)
        provider = self.platform.get(code)
        if provider is None:
            raise NoAccount(
                f"no {code} account for this organization: save its credentials "
                f"(PUT /provider_settings/{code}) or configure the platform's own"
            )
        return provider

    async def every(self) -> list[tuple[str, CloudProvider]]:
        """Every account: the platform's, then each organization's own, once each."""
        found: list[tuple[str, CloudProvider]] = list(self.platform.items())
        seen = {id(p) for _, p in found}
        async with self.session_factory() as session:
            organizations = await session.scalars(
                select(ProviderSetting.organization_id)
                .join(Provider, Provider.id == ProviderSetting.provider_id)
                .where(Provider.code == SCALEWAY)
                .distinct()
            )
            ids = list(organizations)
        for organization_id in ids:
            try:
                own = await self._credentials(organization_id)
            except NoAccount as exc:
                # One workspace's unreadable credentials must not blind the loops to
                # every other account: said, and passed over.
                log.warning("provider account skipped", extra={"error": str(exc)[:300]})
                continue
            if own is None:
                continue
            provider = self.scaleway(own)
            if id(provider) not in seen:
                seen.add(id(provider))
                found.append((SCALEWAY, provider))
        return found

    async def _credentials(self, organization_id: uuid.UUID) -> dict[str, str] | None:
        cached = self._read.get(organization_id)
        if cached is not None and time.monotonic() - cached[0] < CREDENTIALS_TTL_S:
            return cached[1]
        async with self.session_factory() as session:
            provider_id = await session.scalar(select(Provider.id).where(Provider.code == SCALEWAY))
            try:
                values = (
                    await creds.read(
                        session=session,
                        keyring=self.keyring,
                        org_id=organization_id,
                        provider_id=provider_id,
                    )
                    if provider_id is not None
                    else {}
                )
            except DecryptionError as exc:
                raise NoAccount(
                    f"the Scaleway credentials of organization {organization_id} cannot be "
                    f"read with PROVIDER_SETTINGS_KEY ({exc}): keep the old key listed until "
                    "`inventiv rotate-provider-key` has run"
                ) from None
        complete = all(values.get(k) for k in ("access_key", "secret_key", "project_id"))
        found = values if complete else None
        self._read[organization_id] = (time.monotonic(), found)
        return found
