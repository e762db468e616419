"""CMD:CHECK_CREDENTIALS: an organization saved provider credentials; ask the provider
whether they work and write the answer to that workspace's action log.

Every orchestrator replica hears the command. The replicas take one advisory lock per
command and the first to hold it writes the outcome; the others find it written and
stop, so one save gives one log entry whatever the number of replicas.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import func, select, text

from inventiv_common import actions
from inventiv_common.actions import log_action
from inventiv_common.bus import Envelope
from inventiv_common.db.models import ActionLog
from inventiv_orchestrator.context import Context

log = logging.getLogger(__name__)


async def check_credentials(ctx: Context, envelope: Envelope) -> None:
    code = str(envelope.payload.get("provider", ""))[:64]
    command_id = str(envelope.id)
    async with ctx.session_factory() as session:
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"check-credentials:{command_id}"},
        )
        already = await session.scalar(
            select(func.count())
            .select_from(ActionLog)
            .where(
                ActionLog.action_type == actions.PROVIDER_CREDENTIALS_CHECKED,
                ActionLog.details["command"].astext == command_id,
            )
        )
        if already:
            return
        error_code, error = await _ask(ctx, code, envelope.organization_id)
        log_action(
            session,
            None,
            actions.PROVIDER_CREDENTIALS_CHECKED,
            component="orchestrator",
            organization_id=envelope.organization_id,
            correlation_id=envelope.correlation_id,
            status="failed" if error_code else "success",
            error_code=error_code,
            error_message=error,
            details={"provider": code, "command": command_id, "valid": error_code is None},
        )
        await session.commit()


async def _ask(
    ctx: Context, code: str, organization_id: uuid.UUID | None
) -> tuple[str | None, str | None]:
    """(None, None) when the provider accepts the credentials, else (code, reason)."""
    try:
        if organization_id is None:
            raise KeyError(code)
        provider = await ctx.provider_for(code, organization_id)
    except KeyError:
        return "provider_not_configured", f"no {code!r} provider runs in this orchestrator"
    try:
        valid = await provider.check_credentials()
    except Exception as exc:  # the provider's own failure, reported, never raised
        log.warning("credentials check failed", extra={"provider": code, "error": str(exc)})
        return "check_failed", f"the provider could not be asked: {type(exc).__name__}"
    return (None, None) if valid else ("credentials_refused", "the provider refused them")
