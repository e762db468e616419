"""/provider_settings/{provider} and /providers/config-status."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from inventiv_api.audit import service as audit
from inventiv_api.deps import BusDep, KeyRingDep, SessionDep, SettingsDep
from inventiv_api.provider_settings import service, verification
from inventiv_api.provider_settings.schemas import (
    ProviderConfigStatus,
    ProviderSettingsOut,
    ProviderSettingsUpdate,
)
from inventiv_api.security.permissions import Permission as P
from inventiv_api.security.principal import Principal, require
from inventiv_api.security.workspace import current_org_id
from inventiv_common.bus import commit_and_publish

router = APIRouter(tags=["provider settings"])
Reader = Annotated[Principal, Depends(require(P.provider_settings_read))]
Manager = Annotated[Principal, Depends(require(P.provider_settings_manage))]
ProviderCode = Annotated[str, Path(pattern=r"^[a-z0-9_-]{1,64}$")]


@router.get("/provider_settings/{provider}", response_model=ProviderSettingsOut)
async def get_provider_settings(
    provider: ProviderCode, principal: Reader, session: SessionDep, keyring: KeyRingDep
) -> ProviderSettingsOut:
    row = await service.provider_by_code(session, provider)
    return await service.describe(
        session=session, keyring=keyring, org_id=current_org_id(principal), provider=row
    )


@router.put(
    "/provider_settings/{provider}",
    response_model=ProviderSettingsOut,
    responses={
        202: {
            "model": ProviderSettingsOut,
            "description": "stored, not verified yet: the provider or the orchestrator "
            "could not be asked; `verification` is `pending` until the orchestrator has "
            "checked them",
        },
        422: {"description": "invalid fields, or `credentials_refused`: nothing stored"},
    },
)
async def put_provider_settings(
    provider: ProviderCode,
    body: ProviderSettingsUpdate,
    principal: Manager,
    request: Request,
    response: Response,
    session: SessionDep,
    keyring: KeyRingDep,
    bus: BusDep,
    settings: SettingsDep,
) -> ProviderSettingsOut:
    org_id = current_org_id(principal)
    row = await service.provider_by_code(session, provider)
    saved = await service.save(
        session=session,
        keyring=keyring,
        org_id=org_id,
        user_id=principal.user_id,
        provider=row,
        values=body.values,
        check=partial(
            verification.ask,
            request.app.state.http,
            settings.orchestrator_url,
            organization_id=org_id,
            provider=row.code,
        ),
    )
    audit.record(
        session=session,
        request=request,
        action="provider_credentials.refused" if saved.refused else "provider_credentials.updated",
        principal=principal,
        resource_type="provider",
        resource_id=row.code,
        outcome="failure" if saved.refused else "success",
        details={"fields": saved.fields},  # names only, never values
    )
    # A refusal's records are kept: the workspace sees what was tried and why it failed.
    await commit_and_publish(session, bus)
    if saved.refused and saved.verdict is not None:
        raise service.refused_error(row, saved.verdict)
    if saved.pending:
        response.status_code = 202
    return await service.describe(session=session, keyring=keyring, org_id=org_id, provider=row)


@router.get("/providers/config-status", response_model=list[ProviderConfigStatus])
async def providers_config_status(
    principal: Reader, session: SessionDep
) -> list[ProviderConfigStatus]:
    return await service.config_status(session=session, org_id=current_org_id(principal))
