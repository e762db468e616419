"""Seeding the default organization's provider credentials from secret files at boot."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.identity.bootstrap import slugify
from inventiv_api.settings import ApiSettings
from inventiv_common import provider_credentials as creds
from inventiv_common.crypto import KeyRing
from inventiv_common.db.models import Organization, Provider

log = logging.getLogger(__name__)


async def seed_default_credentials(
    *, session: AsyncSession, settings: ApiSettings, keyring: KeyRing
) -> bool:
    """Store the configured Scaleway credentials for the default organization, unless it
    already has some (an operator's later change through the API is never overwritten)."""
    values = {
        "access_key": settings.scaleway_access_key.get_secret_value()
        if settings.scaleway_access_key
        else None,
        "secret_key": settings.scaleway_secret_key.get_secret_value()
        if settings.scaleway_secret_key
        else None,
        "project_id": settings.scaleway_project_id,
    }
    present = {k: v for k, v in values.items() if v}
    if not present:
        log.warning("AUTO_SEED_PROVIDER_CREDENTIALS is on but no Scaleway credential is set")
        return False
    org = await session.scalar(
        select(Organization).where(Organization.slug == slugify(settings.default_organization_name))
    )
    provider = await session.scalar(select(Provider).where(Provider.code == "scaleway"))
    if org is None or provider is None:
        log.warning("default organization or scaleway provider missing; credentials not seeded")
        return False
    if await creds.rows_of(session, org.id, provider.id):
        return False
    await creds.write(
        session=session,
        keyring=keyring,
        org_id=org.id,
        provider_id=provider.id,
        values=dict(present),
    )
    log.info("provider credentials seeded", extra={"fields": sorted(present)})
    return True
