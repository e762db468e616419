from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from inventiv_api.security.permissions import Role
from inventiv_api.types import Email, Name, WholeNumber

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$"


class OrganizationOut(BaseModel):
    id: uuid.UUID
    name: str
    slug: str
    subscription_plan: str
    role: Role
    is_current: bool
    created_at: datetime


class OrganizationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(min_length=1, max_length=200)
    slug: str | None = Field(default=None, pattern=SLUG_PATTERN)


class WorkspaceSelect(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # null selects the Personal workspace.
    organization_id: uuid.UUID | None


class MemberOut(BaseModel):
    user_id: uuid.UUID
    username: str
    email: str
    first_name: str | None
    last_name: str | None
    role: Role
    joined_at: datetime


class MemberRoleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


# Whole hours (types.WholeNumber), at most 30 days.
ExpiryHours = Annotated[int, Field(ge=1, le=24 * 30), WholeNumber]


class InvitationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    role: Role = Role.user
    expires_in_hours: ExpiryHours | None = None


class InvitationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    role: Role
    expires_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime
    invited_by_user_id: uuid.UUID | None


class InvitationCreated(InvitationOut):
    # The only time the token is shown: it is stored hashed.
    token: str
    accept_path: str
