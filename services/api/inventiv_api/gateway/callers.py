"""Who is calling the gateway, and what they may do: the principal behind the bearer
key (or session cookie), its workspace, the models its API key may use and its limits.

Resolving a caller costs database queries, too many for every request of the hot
path, so a caller is cached for a few seconds per credential: a revoked key stops
working within CALLER_TTL_S. While PostgreSQL is away, a caller seen lately keeps being
served (routes and metering do without the database too); a new one must wait.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from starlette.requests import Request
from starlette.types import Scope

from inventiv_api.errors import ApiError
from inventiv_api.gateway.errors import DATABASE_DOWN, GatewayError, database_down
from inventiv_api.security.permissions import Permission
from inventiv_api.security.principal import Principal, check_cross_site, resolve_principal
from inventiv_api.settings import ApiSettings
from inventiv_common.db.models import ApiKey
from inventiv_common.web import resources_of

CALLER_TTL_S = 5.0
# How long past its TTL a cached caller is still served while PostgreSQL is away.
STALE_CALLER_MAX_S = 600.0
MAX_CACHED_CALLERS = 10_000


@dataclass(frozen=True)
class Caller:
    principal: Principal
    organization_id: uuid.UUID
    allowed_models: frozenset[str] | None  # None: every model of the organization
    requests_per_minute: int | None = None  # the API key's limits, if any
    tokens_per_minute: int | None = None

    def may_use(self, model: str) -> bool:
        return self.allowed_models is None or model in self.allowed_models


class Callers:
    """The callers of one gateway, cached by credential."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        # credential -> (caller, expiry, resolved at)
        self._cache: dict[str, tuple[Caller, float, float]] = {}

    async def identify(self, scope: Scope) -> Caller:
        """The caller of this request; a GatewayError if it may not use the gateway."""
        request = Request(scope)
        credential = request.headers.get("authorization") or request.cookies.get(
            self.settings.session_cookie_name, ""
        )
        cached = self._cache.get(credential)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            caller = cached[0]
        else:
            try:
                caller = await self._resolve(request)
            except DATABASE_DOWN as exc:
                # A caller seen lately is still served, asking again once a second.
                if cached is None or now - cached[2] > STALE_CALLER_MAX_S:
                    raise database_down(exc) from None
                caller = cached[0]
                self._cache[credential] = (caller, now + 1.0, cached[2])
            else:
                if len(self._cache) >= MAX_CACHED_CALLERS:
                    self._cache.clear()
                self._cache[credential] = (caller, now + CALLER_TTL_S, now)
        try:
            check_cross_site(request, caller.principal, self.settings)
        except ApiError as exc:
            raise GatewayError(403, exc.message, kind="permission_error", code=exc.code) from None
        return caller

    async def _resolve(self, request: Request) -> Caller:
        async with resources_of(request).session_factory() as session:
            try:
                principal = await resolve_principal(request, session, self.settings)
            except ApiError as exc:
                raise GatewayError(
                    401, exc.message, kind="authentication_error", code="invalid_api_key"
                ) from None
            if principal is None:
                raise GatewayError(
                    401,
                    "authentication required: Authorization: Bearer <API key>",
                    kind="authentication_error",
                    code="invalid_api_key",
                )
            if principal.organization_id is None or not principal.can(Permission.models_read):
                raise GatewayError(
                    403, "select an organization workspace first", kind="permission_error"
                )
            if principal.api_key_id is None:
                return Caller(principal, principal.organization_id, None)
            allowed, rpm, tpm = (
                await session.execute(
                    select(
                        ApiKey.allowed_models,
                        ApiKey.requests_per_minute,
                        ApiKey.tokens_per_minute,
                    ).where(ApiKey.id == principal.api_key_id)
                )
            ).one()
        return Caller(
            principal, principal.organization_id, frozenset(allowed) if allowed else None, rpm, tpm
        )
