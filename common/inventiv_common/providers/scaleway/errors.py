"""Scaleway's refusals, as causes an operator understands.

The SDK raises `ScalewayException` for any answer of 400 or more, with Scaleway's JSON
body: its `type` names the cause (`out_of_stock`, `quotas_exceeded` with the quota in
`details`, `not_found`, `transient_state`, `invalid_arguments`, `permissions_denied`,
`denied_authentication`). Each becomes a `ProviderError` whose `code` is ours (stable,
shown on the instance) and whose message says what happened in words, with what
Scaleway said about the quota when it said something. Transient causes (5xx, a resource
in a transient state, rate limits, the network) are retryable; the others are final:
trying the same request again cannot succeed.
"""

from __future__ import annotations

import json
from typing import Any

from scaleway_core.api import ScalewayException

from inventiv_common.providers.base import OUT_OF_STOCK, ProviderError

QUOTA_EXCEEDED = "quota_exceeded"
INVALID_CREDENTIALS = "invalid_credentials"
PERMISSION_DENIED = "permission_denied"
INVALID_ARGUMENT = "invalid_argument"
NOT_FOUND = "not_found"
TRANSIENT = "provider_transient"
# Scaleway's answer is not JSON, or names no cause we know.
UNEXPECTED = "provider_error"


def body_of(exc: ScalewayException) -> dict[str, Any]:
    try:
        body = json.loads(exc.response.text or "{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def classify(exc: ScalewayException, doing: str) -> ProviderError:
    """`doing`: what was asked, in words ("creating the server"), for the message."""
    status = exc.status_code or 0
    body = body_of(exc)
    kind = str(body.get("type", ""))
    said = _short(str(body.get("message") or exc.response.reason or "no reason given"))
    if kind == "out_of_stock":
        return ProviderError(
            f"Scaleway has no capacity for this type in this zone ({doing}): {said}",
            retryable=False,
            code=OUT_OF_STOCK,
        )
    if kind == "quotas_exceeded":
        return ProviderError(
            f"Scaleway quota exceeded while {doing}: {_quotas(body) or said}",
            retryable=False,
            code=QUOTA_EXCEEDED,
        )
    if status == 401 or kind in ("denied_authentication", "authentication_denied"):
        return ProviderError(
            f"Scaleway refused the credentials while {doing}: {said}",
            retryable=False,
            code=INVALID_CREDENTIALS,
        )
    if status == 403 or kind == "permissions_denied":
        return ProviderError(
            f"the Scaleway credentials may not do this ({doing}): {said}",
            retryable=False,
            code=PERMISSION_DENIED,
        )
    if kind == "not_found" or status == 404:
        return ProviderError(f"Scaleway found nothing while {doing}: {said}", code=NOT_FOUND)
    if (
        kind in ("transient_state", "precondition_failed")
        or status in (409, 412, 429)
        or status >= 500
    ):
        # A resource busy or still in use (a volume its server is still letting go
        # of), a rate limit, Scaleway failing: the same request may succeed later.
        return ProviderError(
            f"Scaleway is busy or failing ({doing}), will retry: {said}", code=TRANSIENT
        )
    if kind == "invalid_arguments" or 400 <= status < 500:
        return ProviderError(
            f"Scaleway refused the request while {doing}: {said}{_fields(body)}",
            retryable=False,
            code=INVALID_ARGUMENT,
        )
    return ProviderError(f"Scaleway answered {status} while {doing}: {said}", code=UNEXPECTED)


def unreachable(exc: Exception, doing: str) -> ProviderError:
    """The API could not be reached or did not answer in time: worth retrying."""
    return ProviderError(
        f"Scaleway could not be reached while {doing}: {type(exc).__name__}", code=TRANSIENT
    )


def _quotas(body: dict[str, Any]) -> str:
    details = body.get("details")
    if not isinstance(details, list):
        return ""
    said = []
    for item in details[:5]:
        if not isinstance(item, dict):
            continue
        resource = _short(str(item.get("resource", "a resource")), 80)
        quota, current = item.get("quota"), item.get("current")
        if quota is not None:
            said.append(f"{resource}: {current} used of a quota of {quota}")
        else:
            said.append(resource)
    return "; ".join(said)


def _fields(body: dict[str, Any]) -> str:
    fields = body.get("fields") or body.get("details")
    if isinstance(fields, dict) and fields:
        return " (" + _short(", ".join(f"{k}: {v}" for k, v in list(fields.items())[:5])) + ")"
    return ""


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
