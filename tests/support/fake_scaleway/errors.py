"""Scaleway's refusals as the fake answers them: a status and a JSON body.

The Python SDK turns any status of 400 or more into `ScalewayException` after calling
`response.json()` on the body, so every refusal here is JSON (a non-JSON body makes the
SDK raise a `JSONDecodeError` instead, which `FaultPlan.fail_next(raw_text=...)` can
reproduce on purpose). The body's `type` is what a client branches on: the shapes follow
the standard errors Scaleway's SDKs parse (`details` for quotas, invalid arguments and
permissions; `resource`/`resource_id` for not found and transient states). Where
Scaleway's status for a type is not documented, the status chosen is said next to it.
"""

from __future__ import annotations

from typing import Any


class ScalewayError(Exception):
    """An answer of 400 or more, raised anywhere in the fake and sent as is."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message", ""))
        self.status = status
        self.body = body


def not_found(resource: str, resource_id: str) -> ScalewayError:
    return ScalewayError(
        404,
        {
            "type": "not_found",
            "message": "resource is not found",
            "resource": resource,
            "resource_id": resource_id,
        },
    )


def transient_state(resource: str, resource_id: str, current_state: str) -> ScalewayError:
    # 409: the resource is busy; the same request may succeed once its state settles.
    return ScalewayError(
        409,
        {
            "type": "transient_state",
            "message": "resource is in a transient state",
            "resource": resource,
            "resource_id": resource_id,
            "current_state": current_state,
        },
    )


def out_of_stock(resource: str) -> ScalewayError:
    # Scaleway's status for this type is not documented where we could read it; 409
    # (a conflict with the zone's capacity) is our choice. Clients branch on `type`.
    return ScalewayError(
        409,
        {"type": "out_of_stock", "message": "resource is out of stock", "resource": resource},
    )


def quotas_exceeded(resource: str, quota: int, current: int, project_id: str) -> ScalewayError:
    return ScalewayError(
        403,
        {
            "type": "quotas_exceeded",
            "message": "quota(s) exceeded for this resource",
            "details": [
                {
                    "resource": resource,
                    "quota": quota,
                    "current": current,
                    "project_id": project_id,
                }
            ],
        },
    )


def invalid_argument(name: str, help_message: str, reason: str = "constraint") -> ScalewayError:
    return ScalewayError(
        400,
        {
            "type": "invalid_arguments",
            "message": "invalid argument(s)",
            "details": [{"argument_name": name, "reason": reason, "help_message": help_message}],
        },
    )


def not_allowed_now(message: str) -> ScalewayError:
    """An action the resource's stable state refuses (terminate a stopped server...).

    The Instance API still answers these with its older `invalid_request_error` type
    and a sentence; the words are ours."""
    return ScalewayError(400, {"type": "invalid_request_error", "message": message})


def still_in_use(help_message: str) -> ScalewayError:
    return ScalewayError(
        412,
        {
            "type": "precondition_failed",
            "message": "precondition failed",
            "precondition": "resource_still_in_use",
            "help_message": help_message,
        },
    )


def permissions_denied(resource: str, action: str) -> ScalewayError:
    return ScalewayError(
        403,
        {
            "type": "permissions_denied",
            "message": "insufficient permissions",
            "details": [{"resource": resource, "action": action}],
        },
    )


def denied_authentication(reason: str) -> ScalewayError:
    """`reason`: `invalid_argument` (no token, or not a secret key) or `not_found`."""
    return ScalewayError(
        401,
        {
            "type": "denied_authentication",
            "message": "authentication is denied",
            "method": "api_key",
            "reason": reason,
        },
    )


def no_route(method: str, path: str) -> ScalewayError:
    return ScalewayError(
        404, {"type": "not_found", "message": f"no route for {method} {path}", "resource": "route"}
    )
