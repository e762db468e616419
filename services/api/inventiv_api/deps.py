"""Dependency aliases every router uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.settings import ApiSettings
from inventiv_common.bus import EventBus
from inventiv_common.crypto import KeyRing
from inventiv_common.web import resources_of


async def _db_session(request: Request) -> AsyncIterator[AsyncSession]:
    # The route owns the transaction: services flush, the route commits.
    async with resources_of(request).session_factory() as session:
        yield session


async def _settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.api_settings
    return settings


async def _keyring(request: Request) -> KeyRing:
    keyring: KeyRing = request.app.state.keyring
    return keyring


async def _bus(request: Request) -> EventBus:
    return resources_of(request).bus


SessionDep = Annotated[AsyncSession, Depends(_db_session)]
SettingsDep = Annotated[ApiSettings, Depends(_settings)]
KeyRingDep = Annotated[KeyRing, Depends(_keyring)]
BusDep = Annotated[EventBus, Depends(_bus)]
