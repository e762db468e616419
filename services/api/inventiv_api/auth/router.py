"""/auth: login, logout, profile, password, sessions."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from redis.exceptions import RedisError

from inventiv_api.audit import service as audit
from inventiv_api.auth import service
from inventiv_api.auth.schemas import LoginIn, MeOut, MeUpdate, PasswordChange, SessionOut
from inventiv_api.deps import SessionDep, SettingsDep
from inventiv_api.errors import ApiError, conflict, forbidden, not_found
from inventiv_api.identity.passwords import verify_password
from inventiv_api.security import tokens
from inventiv_api.security.permissions import Permission as P
from inventiv_api.security.principal import (
    Principal,
    origin_allowed,
    request_origin,
    require,
    role_in,
)
from inventiv_api.security.ratelimit import RateLimiter, Verdict
from inventiv_api.settings import ApiSettings
from inventiv_common.db.models import User
from inventiv_common.web import resources_of

log = logging.getLogger(__name__)
router = APIRouter(prefix="/auth", tags=["auth"])

Authenticated = Annotated[Principal, Depends(require(P.authenticated))]
ACCOUNT_WINDOW_S = 15 * 60


def _too_many(verdict: Verdict) -> ApiError:
    return ApiError(
        429,
        "rate_limited",
        "too many login attempts; try again later",
        headers={"Retry-After": str(verdict.retry_after_s)},
    )


async def _guarded(pending: Awaitable[Verdict]) -> Verdict:
    try:
        return await pending
    except RedisError:
        # Failing open keeps people able to log in while Redis is away; it is logged.
        log.warning("login rate limit unavailable (Redis error); allowing the attempt")
        return Verdict(True, 1)


def _set_cookie(response: Response, settings: ApiSettings, token: str) -> None:
    response.set_cookie(
        settings.session_cookie_name,
        token,
        max_age=settings.jwt_ttl_seconds,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
        path="/",
    )


@router.post("/login", response_model=MeOut, dependencies=[Depends(require(P.public))])
async def login(
    body: LoginIn, request: Request, response: Response, session: SessionDep, settings: SettingsDep
) -> MeOut:
    if request_origin(request) is not None and not origin_allowed(request, settings):
        raise forbidden("cross-site login refused: Origin is not allowed")
    identifier = body.identifier
    if not identifier:
        raise ApiError(422, "validation_error", "username or email is required")
    resources = resources_of(request)
    limiter = RateLimiter(resources.bus.redis, namespace=f"{settings.redis_channel_prefix}rl")
    ip = audit.client_ip(request) or "unknown"
    per_ip = await _guarded(
        limiter.hit(f"login:ip:{ip}", settings.login_attempts_per_ip_per_minute, 60)
    )
    if not per_ip.allowed:
        raise _too_many(per_ip)
    account_key = f"login:account:{identifier.lower()}"
    per_account = await _guarded(
        limiter.peek(account_key, settings.login_failures_per_account_per_15min)
    )
    if not per_account.allowed:
        raise _too_many(per_account)

    user = await service.authenticate(
        session=session, identifier=identifier, password=body.password
    )
    if user is None:
        await _guarded(
            limiter.hit(
                account_key, settings.login_failures_per_account_per_15min, ACCOUNT_WINDOW_S
            )
        )
        audit.record(
            session=session,
            request=request,
            action="auth.login_failed",
            outcome="failure",
            details={"identifier": identifier[:320]},
        )
        await session.commit()
        # One message whichever of the two was wrong.
        raise ApiError(401, "invalid_credentials", "invalid username, email or password")

    user_session = await service.open_session(
        session=session,
        user=user,
        ip_address=audit.client_ip(request),
        user_agent=request.headers.get("user-agent"),
        ttl_seconds=settings.jwt_ttl_seconds,
    )
    audit.record(
        session=session,
        request=request,
        action="auth.login",
        actor_user_id=user.id,
        organization_id=user_session.current_organization_id,
        resource_type="session",
        resource_id=user_session.id,
    )
    await session.commit()
    token = tokens.issue(
        settings.secret("jwt_secret"),
        tokens.SessionClaims(user.id, user_session.id),
        settings.jwt_ttl_seconds,
    )
    _set_cookie(response, settings, token)
    org_id = user_session.current_organization_id
    principal = Principal(
        user_id=user.id,
        username=user.username,
        email=user.email,
        is_platform_admin=user.role == "admin",
        organization_id=org_id,
        role=await role_in(session, org_id, user.id),
        session_id=user_session.id,
    )
    return await service.describe(session=session, principal=principal)


@router.post("/logout", status_code=204)
async def logout(
    principal: Authenticated,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    if principal.session_id is not None:
        await service.revoke_sessions(
            session=session, user_id=principal.user_id, only=principal.session_id
        )
        audit.record(
            session=session,
            request=request,
            action="auth.logout",
            principal=principal,
            resource_type="session",
            resource_id=principal.session_id,
        )
        await session.commit()
    response = Response(status_code=204)
    response.delete_cookie(settings.session_cookie_name, path="/")
    return response


@router.get("/me", response_model=MeOut)
async def me(principal: Authenticated, session: SessionDep) -> MeOut:
    return await service.describe(session=session, principal=principal)


@router.put("/me", response_model=MeOut)
async def update_me(
    body: MeUpdate, principal: Authenticated, request: Request, session: SessionDep
) -> MeOut:
    user = await session.get_one(User, principal.user_id)
    changes = body.model_dump(exclude_unset=True)
    if "email" in changes and changes["email"] is None:
        raise ApiError(422, "validation_error", "email cannot be empty")
    if body.email and await service.email_taken(
        session=session, email=body.email, except_user=user.id
    ):
        raise conflict("email_taken", "that email is already used by another account")
    for field, value in changes.items():
        setattr(user, field, value)
    audit.record(
        session=session,
        request=request,
        action="user.profile_updated",
        principal=principal,
        resource_type="user",
        resource_id=user.id,
        details={"fields": sorted(changes)},
    )
    await session.commit()
    return await service.describe(session=session, principal=principal)


@router.put("/me/password", status_code=204)
async def change_password(
    body: PasswordChange, principal: Authenticated, request: Request, session: SessionDep
) -> Response:
    user = await session.get_one(User, principal.user_id)
    if not verify_password(body.old_password, user.password_hash):
        raise ApiError(400, "wrong_password", "the current password is not correct")
    await service.change_password(session=session, user=user, new_password=body.new_password)
    revoked = await service.revoke_sessions(
        session=session, user_id=user.id, keep=principal.session_id
    )
    audit.record(
        session=session,
        request=request,
        action="user.password_changed",
        principal=principal,
        resource_type="user",
        resource_id=user.id,
        details={"other_sessions_revoked": revoked},
    )
    await session.commit()
    return Response(status_code=204)


@router.get("/sessions", response_model=list[SessionOut])
async def sessions(principal: Authenticated, session: SessionDep) -> list[SessionOut]:
    rows = await service.list_sessions(session=session, user_id=principal.user_id)
    return [
        SessionOut(
            id=row.id,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            expires_at=row.expires_at,
            ip_address=row.ip_address,
            user_agent=row.user_agent,
            current_organization_id=row.current_organization_id,
            is_current=row.id == principal.session_id,
        )
        for row in rows
    ]


@router.post("/sessions/{session_id}/revoke", status_code=204)
async def revoke_session(
    session_id: uuid.UUID, principal: Authenticated, request: Request, session: SessionDep
) -> Response:
    revoked = await service.revoke_sessions(
        session=session, user_id=principal.user_id, only=session_id
    )
    if not revoked:
        raise not_found("session")
    audit.record(
        session=session,
        request=request,
        action="auth.session_revoked",
        principal=principal,
        resource_type="session",
        resource_id=session_id,
    )
    await session.commit()
    return Response(status_code=204)
