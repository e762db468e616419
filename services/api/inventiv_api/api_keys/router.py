"""/api_keys of the current organization."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from inventiv_api.api_keys import service
from inventiv_api.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from inventiv_api.audit import service as audit
from inventiv_api.deps import SessionDep
from inventiv_api.security.permissions import Permission as P
from inventiv_api.security.principal import Principal, require

router = APIRouter(prefix="/api_keys", tags=["api keys"])
KeyUser = Annotated[Principal, Depends(require(P.api_keys_use))]


@router.get("", response_model=list[ApiKeyOut])
async def list_api_keys(principal: KeyUser, session: SessionDep) -> list[ApiKeyOut]:
    rows = await service.list_keys(session=session, principal=principal)
    return [ApiKeyOut.model_validate(row) for row in rows]


@router.post("", response_model=ApiKeyCreated, status_code=201)
async def create_api_key(
    body: ApiKeyCreate, principal: KeyUser, request: Request, session: SessionDep
) -> ApiKeyCreated:
    key, secret = await service.create(session=session, principal=principal, body=body)
    audit.record(
        session=session,
        request=request,
        action="api_key.created",
        principal=principal,
        resource_type="api_key",
        resource_id=key.id,
        details={"name": key.name, "prefix": key.key_prefix},
    )
    await session.commit()
    return ApiKeyCreated(**ApiKeyOut.model_validate(key).model_dump(), key=secret)


@router.delete("/{key_id}", status_code=204)
async def revoke_api_key(
    key_id: uuid.UUID, principal: KeyUser, request: Request, session: SessionDep
) -> Response:
    key = await service.revoke(session=session, principal=principal, key_id=key_id)
    audit.record(
        session=session,
        request=request,
        action="api_key.revoked",
        principal=principal,
        resource_type="api_key",
        resource_id=key.id,
        details={"prefix": key.key_prefix},
    )
    await session.commit()
    return Response(status_code=204)
