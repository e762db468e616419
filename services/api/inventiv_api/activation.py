"""The double switch on instances and models: a resource serves traffic only when it is
switched on technically (it works) and economically (someone pays for it)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, StrictBool, computed_field
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.audit import service as audit
from inventiv_api.security.principal import Principal


class Activation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Strict: `0`, `"no"` or `"false"` are not answers to a switch.
    active: StrictBool


class Activated(BaseModel):
    technical_activation: bool
    economic_activation: bool

    @computed_field  # type: ignore[prop-decorator]
    @property
    def serves_traffic(self) -> bool:
        """Only a resource switched on both technically and economically serves traffic."""
        return self.technical_activation and self.economic_activation


Setter = Callable[..., Awaitable[Any]]


async def switch(
    setter: Setter,
    *,
    resource: str,
    kind: str,
    resource_id: uuid.UUID,
    body: Activation,
    principal: Principal,
    request: Request,
    session: AsyncSession,
) -> Any:
    """Switch one activation (`kind`: technical or economic) of an instance or a model
    through its domain's setter, audited and committed; returns the row."""
    row = await setter(
        session=session, principal=principal, resource_id=resource_id, kind=kind, active=body.active
    )
    audit.record(
        session=session,
        request=request,
        action=f"{resource}.{kind}_activation",
        principal=principal,
        resource_type=resource,
        resource_id=resource_id,
        details={"active": body.active},
    )
    await session.commit()
    return row
