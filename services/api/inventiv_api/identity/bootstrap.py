"""Creating the first admin and the default organization at boot, never overwriting."""

from __future__ import annotations

import logging
import re

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.identity.passwords import hash_password
from inventiv_common.db.models import Organization, OrganizationMembership, User

log = logging.getLogger(__name__)

# Serializes bootstrap between api replicas booting at once ("bootadm" in ASCII).
BOOTSTRAP_LOCK_KEY = 0x626F6F7461646D


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:100] or "organization"


async def bootstrap_admin(
    *,
    session: AsyncSession,
    username: str,
    email: str,
    password: str,
    organization_name: str,
) -> bool:
    """Create the admin, its organization and its owner membership if the admin is absent.

    Returns True when something was created. An existing admin is left as it is, so a
    password changed through the API survives restarts.
    """
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": BOOTSTRAP_LOCK_KEY})
    existing = await session.scalar(
        select(User).where(
            (func.lower(User.username) == username.lower())
            | (func.lower(User.email) == email.lower())
        )
    )
    if existing is not None:
        return False
    admin = User(
        username=username, email=email, password_hash=hash_password(password), role="admin"
    )
    session.add(admin)
    await session.flush()
    slug = slugify(organization_name)
    organization = await session.scalar(select(Organization).where(Organization.slug == slug))
    if organization is None:
        organization = Organization(name=organization_name, slug=slug, created_by_user_id=admin.id)
        session.add(organization)
        await session.flush()
    session.add(
        OrganizationMembership(organization_id=organization.id, user_id=admin.id, role="owner")
    )
    await session.flush()
    log.info("admin bootstrapped", extra={"username": username, "organization": slug})
    return True
