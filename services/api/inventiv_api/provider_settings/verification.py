"""Whether an organization's provider credentials work: asked of the orchestrator (the
only process holding providers), recorded in the workspace's action log, read back.

A check's record (`provider.credentials_checked`) says whether the values checked are
the ones stored (`details.stored`): credentials refused while saving were not stored,
so their refusal says nothing about the ones in use. The state of the stored values is
the latest record of them made at or after their last change (a save writes the record
in the values' own transaction, so both carry the same time).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import httpx
from pydantic import BaseModel, ValidationError
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_common import actions
from inventiv_common.db.models import ActionLog

log = logging.getLogger(__name__)

# A check makes at most a few provider calls of 10 s each (the orchestrator bounds
# them); past this the save goes on unverified rather than hold the caller.
CHECK_TIMEOUT_S = 30.0

Verification = Literal["verified", "refused", "pending"]


class Verdict(BaseModel):
    # True: accepted; False: refused (code and reason say why); None: not known yet.
    valid: bool | None
    code: str | None = None
    reason: str | None = None


async def ask(
    http: httpx.AsyncClient,
    orchestrator_url: str,
    values: dict[str, str],
    *,
    organization_id: uuid.UUID,
    provider: str,
) -> Verdict:
    """The orchestrator's verdict on these values; an orchestrator that cannot answer
    gives an unknown one (valid None), never an exception."""
    try:
        answer = await http.post(
            f"{orchestrator_url}/internal/providers/{provider}/credentials/check",
            json={"organization_id": str(organization_id), "values": values},
            timeout=CHECK_TIMEOUT_S,
        )
    except httpx.HTTPError as exc:
        log.warning(
            "credentials check: orchestrator unreachable", extra={"error": type(exc).__name__}
        )
        return Verdict(
            valid=None, code="orchestrator_unreachable", reason="the orchestrator did not answer"
        )
    if answer.status_code != 200:
        log.warning("credentials check: orchestrator refused", extra={"status": answer.status_code})
        return Verdict(
            valid=None,
            code="check_failed",
            reason=f"the orchestrator answered {answer.status_code}",
        )
    try:
        return Verdict.model_validate_json(answer.content)
    except ValidationError:
        return Verdict(
            valid=None, code="check_failed", reason="the orchestrator's answer was not understood"
        )


def record(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    provider: str,
    verdict: Verdict,
    stored: bool,
) -> None:
    """The check's outcome in the workspace's action log; names and causes, no value."""
    actions.log_action(
        session,
        None,
        actions.PROVIDER_CREDENTIALS_CHECKED,
        component="api",
        organization_id=organization_id,
        user_id=user_id,
        status="success" if verdict.valid else "failed",
        error_code=verdict.code,
        error_message=verdict.reason,
        details={"provider": provider, "valid": verdict.valid, "stored": stored},
    )


@dataclass(frozen=True)
class State:
    verification: Verification | None
    reason: str | None
    last_verified_at: datetime | None


def _checks(organization_id: uuid.UUID, provider: str) -> Select[ActionLog]:
    """Records of checks of the stored values (older records carry no `stored`)."""
    return (
        select(ActionLog)
        .where(
            ActionLog.organization_id == organization_id,
            ActionLog.action_type == actions.PROVIDER_CREDENTIALS_CHECKED,
            ActionLog.details["provider"].astext == provider,
            ActionLog.details["stored"].astext.is_distinct_from("false"),
        )
        .order_by(ActionLog.created_at.desc())
        .limit(1)
    )


async def state(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    provider: str,
    configured: bool,
    changed_at: datetime | None,
) -> State:
    """`changed_at`: the stored values' last change (None: nothing stored)."""
    latest = await session.scalar(_checks(organization_id, provider))
    verified = await session.scalar(
        _checks(organization_id, provider).where(ActionLog.status == "success")
    )
    last_verified_at = verified.created_at if verified is not None else None
    if not configured:
        return State(None, None, last_verified_at)
    if latest is None or (changed_at is not None and latest.created_at < changed_at):
        # Nothing stored and never checked needs no verification (the Mock provider).
        return State("pending" if changed_at is not None else None, None, last_verified_at)
    valid = (latest.details or {}).get("valid")
    if valid is True:
        return State("verified", None, last_verified_at)
    if valid is False:
        return State("refused", latest.error_message, last_verified_at)
    return State("pending", latest.error_message, last_verified_at)
