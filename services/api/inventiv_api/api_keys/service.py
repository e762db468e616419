"""API keys of the current organization. Nothing commits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.api_keys.schemas import ApiKeyCreate
from inventiv_api.errors import ApiError, excerpts, not_found
from inventiv_api.security.permissions import Permission
from inventiv_api.security.principal import Principal
from inventiv_api.security.secrets import API_KEY_PREFIX, display_prefix, new_token, token_hash
from inventiv_api.security.workspace import current_org_id
from inventiv_common.db.models import ApiKey, Model


async def visible_model_ids(*, session: AsyncSession, org_id: uuid.UUID) -> set[str]:
    rows = await session.scalars(
        select(Model.model_id).where(
            (Model.organization_id.is_(None)) | (Model.organization_id == org_id)
        )
    )
    return set(rows)


async def create(
    *, session: AsyncSession, principal: Principal, body: ApiKeyCreate
) -> tuple[ApiKey, str]:
    org_id = current_org_id(principal)
    if body.expires_at is not None and body.expires_at <= datetime.now(UTC):
        raise ApiError(422, "validation_error", "expires_at must be in the future")
    if body.allowed_models is not None:
        unknown = set(body.allowed_models) - await visible_model_ids(session=session, org_id=org_id)
        if unknown:
            raise ApiError(422, "unknown_models", "unknown models: " + excerpts(sorted(unknown)))
    secret = new_token(API_KEY_PREFIX)
    key = ApiKey(
        organization_id=org_id,
        created_by_user_id=principal.user_id,
        name=body.name,
        key_prefix=display_prefix(secret),
        key_hash=token_hash(secret),
        allowed_models=body.allowed_models,
        requests_per_minute=body.requests_per_minute,
        tokens_per_minute=body.tokens_per_minute,
        expires_at=body.expires_at,
    )
    session.add(key)
    await session.flush()
    return key, secret


def _scope(principal: Principal, org_id: uuid.UUID) -> Select[ApiKey]:
    query = select(ApiKey).where(ApiKey.organization_id == org_id)
    if not principal.can(Permission.api_keys_manage):
        query = query.where(ApiKey.created_by_user_id == principal.user_id)
    return query


async def list_keys(*, session: AsyncSession, principal: Principal) -> list[ApiKey]:
    org_id = current_org_id(principal)
    rows = await session.scalars(_scope(principal, org_id).order_by(ApiKey.created_at.desc()))
    return list(rows)


async def revoke(*, session: AsyncSession, principal: Principal, key_id: uuid.UUID) -> ApiKey:
    org_id = current_org_id(principal)
    key = await session.scalar(_scope(principal, org_id).where(ApiKey.id == key_id))
    if key is None:
        raise not_found("API key")
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        await session.flush()
    return key
