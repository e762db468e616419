"""Which provider account acts for an organization, against real PostgreSQL: its own
Scaleway credentials when it saved some, the platform's otherwise; credentials sealed
with a key this orchestrator does not hold are said plainly, and do not keep the
loops that walk every account from the others."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from inventiv_common import provider_credentials as creds
from inventiv_common.crypto import KeyRing
from inventiv_common.db.engine import make_session_factory
from inventiv_common.db.models import Organization, Provider
from inventiv_common.providers.base import ServerSpec
from inventiv_common.providers.scaleway.provider import ScalewayProvider
from inventiv_common.providers.scaleway.settings import ScalewaySettings
from inventiv_orchestrator.accounts import Accounts, NoAccount
from tests.support.addresses import closed_url

VALUES = {
    "access_key": "SCW" + "A" * 17,
    "secret_key": str(uuid.uuid4()),
    "project_id": str(uuid.uuid4()),
}


def no_user_data(_spec: ServerSpec) -> bytes:
    raise AssertionError("nothing is created here")


async def test_an_organization_s_own_account_and_one_that_cannot_be_read(
    engine: AsyncEngine,
) -> None:
    sessions = make_session_factory(engine)
    old_key, new_key = KeyRing("v1:" + "o" * 40), KeyRing("v2:" + "n" * 40)
    async with sessions() as session:
        provider_id = await session.scalar(select(Provider.id).where(Provider.code == "scaleway"))
        assert provider_id is not None, "the catalog seed has the scaleway provider"
        readable, unreadable, without = (
            Organization(name=f"org {uuid.uuid4().hex[:8]}", slug=f"o-{uuid.uuid4().hex[:12]}")
            for _ in range(3)
        )
        session.add_all([readable, unreadable, without])
        await session.flush()
        for org, key in ((readable, new_key), (unreadable, old_key)):
            await creds.write(
                session=session, keyring=key, org_id=org.id, provider_id=provider_id, values=VALUES
            )
        await session.commit()

    settings = ScalewaySettings(SCALEWAY_API_URL=closed_url())
    accounts = Accounts(settings, sessions, new_key, platform={}, user_data=no_user_data)
    own = await accounts.for_organization("scaleway", readable.id)
    assert isinstance(own, ScalewayProvider) and own.config.project_id == VALUES["project_id"]
    with pytest.raises(NoAccount) as refused:
        await accounts.for_organization("scaleway", unreadable.id)
    assert "cannot be read with PROVIDER_SETTINGS_KEY" in str(refused.value)
    with pytest.raises(NoAccount):  # no credentials of its own, and no platform account
        await accounts.for_organization("scaleway", without.id)
    # The loops' walk over every account skips the unreadable one and goes on.
    every = await accounts.every()
    assert own in [provider for _, provider in every]
    assert {code for code, _ in every} == {"scaleway"}
