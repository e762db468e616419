"""Whether a provider accepts an organization's credentials.

Two ways in. `POST /internal/providers/{code}/credentials/check` (credentials_route.py):
the api asks before it stores what an organization saves, with the candidate values,
and records the answer itself, in the same transaction as the values. And
`CMD:CHECK_CREDENTIALS`: the api could not get an answer at once (the orchestrator or
the provider was away), stored the values anyway, and the orchestrator checks the
stored values when it hears the command, writing the answer to that workspace's
action log.

Every orchestrator replica hears the command. The replicas take one advisory lock per
command and the first to hold it writes the outcome; the others find it written and
stop, so one save gives one log entry whatever the number of replicas.

Values are never logged: only the provider, the organization and the verdict.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace

from sqlalchemy import func, select, text

from inventiv_common import actions
from inventiv_common import provider_credentials as creds
from inventiv_common.actions import log_action
from inventiv_common.bus import Envelope
from inventiv_common.crypto import DecryptionError
from inventiv_common.db.models import ActionLog, Provider
from inventiv_common.providers.base import ProviderError, ServerSpec
from inventiv_common.providers.scaleway import credentials as scaleway_credentials
from inventiv_common.providers.scaleway.provider import ScalewayProvider
from inventiv_common.providers.scaleway.settings import ScalewaySettings
from inventiv_orchestrator.context import Context

log = logging.getLogger(__name__)

# Someone waits on a check made while saving: each Scaleway call gets this long, and
# a failing call is tried once more (the provider's loops try harder).
CHECK_CALL_TIMEOUT_S = 10.0
CHECK_RETRIES = 1


@dataclass(frozen=True)
class Verdict:
    # True: accepted; False: refused (code and reason say why); None: the provider
    # could not be asked, so nobody knows yet.
    valid: bool | None
    code: str | None = None
    reason: str | None = None


def _no_user_data(_spec: ServerSpec) -> bytes:
    raise RuntimeError("a provider built to check credentials creates no server")


async def judge(settings: ScalewaySettings, code: str, values: Mapping[str, str]) -> Verdict:
    """Ask the provider about these values, with a provider built for them alone (and
    dropped after: candidate values must not linger among the accounts in use)."""
    if code == "mock":
        return Verdict(True)  # the Mock provider takes any credentials, or none
    if code != "scaleway":
        return Verdict(None, "provider_not_configured", f"no {code} provider runs here")
    problem = scaleway_credentials.malformed(values)
    if problem is not None:
        return Verdict(False, scaleway_credentials.MALFORMED, problem)
    config = replace(
        settings.scaleway_config(values),
        call_timeout_s=min(settings.scaleway_call_timeout_s, CHECK_CALL_TIMEOUT_S),
        max_in_flight=2,
    )
    provider = ScalewayProvider(config, _no_user_data)
    provider.calls.retries = CHECK_RETRIES
    try:
        refused = await scaleway_credentials.refusal(provider)
    except ProviderError as exc:
        return Verdict(None, exc.code, str(exc))
    finally:
        provider.calls.close()
    if refused is not None:
        return Verdict(False, refused.code, str(refused))
    return Verdict(True)


def log_verdict(code: str, organization_id: uuid.UUID | None, verdict: Verdict) -> None:
    log.info(
        "provider credentials checked",
        extra={
            "provider": code,
            "organization_id": str(organization_id),
            "valid": verdict.valid,
            "cause": verdict.code,
        },
    )


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
        verdict = await _ask(ctx, code, envelope.organization_id)
        log_verdict(code, envelope.organization_id, verdict)
        log_action(
            session,
            None,
            actions.PROVIDER_CREDENTIALS_CHECKED,
            component="orchestrator",
            organization_id=envelope.organization_id,
            correlation_id=envelope.correlation_id,
            status="success" if verdict.valid else "failed",
            error_code=verdict.code,
            error_message=verdict.reason,
            details={"provider": code, "command": command_id, "valid": verdict.valid},
        )
        await session.commit()


async def _ask(ctx: Context, code: str, organization_id: uuid.UUID | None) -> Verdict:
    if organization_id is None:
        return Verdict(None, "provider_not_configured", "the command names no organization")
    try:
        own = await _stored(ctx, code, organization_id)
    except DecryptionError:
        return Verdict(None, "credentials_unreadable", "the stored values cannot be decrypted")
    if own is not None:
        # The values as stored now: the accounts' copy may be older than the save.
        return await judge(ctx.settings, code, own)
    try:
        provider = await ctx.provider_for(code, organization_id)
    except KeyError:
        return Verdict(
            None, "provider_not_configured", f"no {code!r} provider runs in this orchestrator"
        )
    try:
        valid = await provider.check_credentials()
    except Exception as exc:  # the provider's own failure, reported, never raised
        log.warning("credentials check failed", extra={"provider": code, "error": str(exc)})
        reason = f"the provider could not be asked: {type(exc).__name__}"
        return Verdict(None, "check_failed", reason)
    return Verdict(True) if valid else Verdict(False, "credentials_refused", "refused")


async def _stored(ctx: Context, code: str, organization_id: uuid.UUID) -> dict[str, str] | None:
    """The organization's own credentials for `code` when complete, else None."""
    fields = creds.CREDENTIAL_FIELDS.get(code)
    if not fields or not any(fields.values()):
        return None  # nothing to check (the Mock provider needs nothing)
    async with ctx.session_factory() as session:
        provider_id = await session.scalar(select(Provider.id).where(Provider.code == code))
        if provider_id is None:
            return None
        values = await creds.read(
            session=session, keyring=ctx.keyring, org_id=organization_id, provider_id=provider_id
        )
    complete = all(values.get(k) for k, required in fields.items() if required)
    return values if complete else None
