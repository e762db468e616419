"""Recording audit entries in the caller's transaction, and reading them back."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import Request
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.security.principal import Principal
from inventiv_common.db.models import AuditLog


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def record(
    *,
    session: AsyncSession,
    request: Request | None,
    action: str,
    principal: Principal | None = None,
    actor_user_id: uuid.UUID | None = None,
    organization_id: uuid.UUID | None = None,
    resource_type: str | None = None,
    resource_id: uuid.UUID | str | None = None,
    outcome: str = "success",
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """Add an audit row to the session; it lands with the change it describes."""
    entry = AuditLog(
        action=action,
        outcome=outcome,
        organization_id=organization_id
        if organization_id is not None
        else (principal.organization_id if principal else None),
        actor_user_id=actor_user_id or (principal.user_id if principal else None),
        actor_api_key_id=principal.api_key_id if principal else None,
        resource_type=resource_type,
        resource_id=str(resource_id) if resource_id is not None else None,
        ip_address=client_ip(request) if request else None,
        user_agent=(request.headers.get("user-agent", "")[:500] or None) if request else None,
        details=details,
    )
    session.add(entry)
    return entry


async def search(
    *,
    session: AsyncSession,
    organization_id: uuid.UUID | None,
    action: str | None,
    actor_user_id: uuid.UUID | None,
    resource_type: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[AuditLog], int]:
    """One organization's entries, or with `organization_id` None those of no organization."""
    owner = (
        AuditLog.organization_id.is_(None)
        if organization_id is None
        else AuditLog.organization_id == organization_id
    )
    query: Select[AuditLog] = select(AuditLog).where(owner)
    if action:
        query = query.where(AuditLog.action == action)
    if actor_user_id:
        query = query.where(AuditLog.actor_user_id == actor_user_id)
    if resource_type:
        query = query.where(AuditLog.resource_type == resource_type)
    if since:
        query = query.where(AuditLog.occurred_at >= since)
    if until:
        query = query.where(AuditLog.occurred_at < until)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(AuditLog.occurred_at.desc(), AuditLog.id.desc()).limit(limit).offset(offset)
    )
    return list(rows), int(total or 0)
