"""POST /internal/providers/{code}/credentials/check: the api asks, before storing them,
whether a provider accepts an organization's credentials (only the orchestrator holds
providers). The answer is given, not stored: the api records it with the values, in
one transaction, so a workspace's record of checks never says more than was saved.

The port is internal, as for /admin/status. The values pass through memory only: they
are neither logged nor kept.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from inventiv_common.provider_credentials import CREDENTIAL_FIELDS
from inventiv_common.web import public_route
from inventiv_orchestrator.context import Context
from inventiv_orchestrator.credentials import judge, log_verdict

router = APIRouter(
    prefix="/internal/providers", tags=["providers"], dependencies=[Depends(public_route)]
)


class CredentialsCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organization_id: uuid.UUID
    # The complete values to check: the api merges a partial update with what it holds.
    values: dict[str, Annotated[str, Field(min_length=1, max_length=4096)]] = Field(max_length=20)


class CredentialsVerdict(BaseModel):
    # null: the provider could not be asked (unreachable, failing): nobody knows yet.
    valid: bool | None
    code: str | None
    reason: str | None


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


@router.post(
    "/{code}/credentials/check",
    response_model=CredentialsVerdict,
    summary="Whether the provider accepts these credentials",
)
async def check_credentials(
    code: Annotated[str, Path(pattern=r"^[a-z0-9_-]{1,64}$")],
    body: CredentialsCheck,
    request: Request,
) -> CredentialsVerdict | JSONResponse:
    fields = CREDENTIAL_FIELDS.get(code)
    if fields is None:
        return _error(404, "not_found", f"no provider {code!r}")
    unknown = sorted(set(body.values) - set(fields))
    missing = sorted(k for k, required in fields.items() if required and k not in body.values)
    if unknown or missing:
        return _error(
            422,
            "validation_error",
            f"{code} credentials: unknown {unknown or 'none'}, missing {missing or 'none'}",
        )
    ctx: Context = request.app.state.ctx
    verdict = await judge(ctx.settings, code, body.values)
    log_verdict(code, body.organization_id, verdict)
    return CredentialsVerdict(valid=verdict.valid, code=verdict.code, reason=verdict.reason)
