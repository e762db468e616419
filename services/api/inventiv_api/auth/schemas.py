"""Request and response bodies of /auth."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonDict

from inventiv_api.types import Email, Name

PASSWORD_MIN_LENGTH = 12


# Something besides spaces: the identifier is stripped before it is looked up.
_NOT_BLANK: JsonDict = {"pattern": r"\S"}


class LoginIn(BaseModel):
    # The login route refuses a body with neither (422): said in the OpenAPI document too.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": [name], "properties": {name: {"type": "string"}}}
                for name in ("username", "email")
            ]
        },
    )

    # Either field may carry the username or the email.
    username: str | None = Field(
        default=None, min_length=1, max_length=320, json_schema_extra=_NOT_BLANK
    )
    email: str | None = Field(
        default=None, min_length=1, max_length=320, json_schema_extra=_NOT_BLANK
    )
    password: str = Field(min_length=1, max_length=1024)

    @property
    def identifier(self) -> str:
        return (self.username or self.email or "").strip()


class MeOut(BaseModel):
    id: uuid.UUID
    username: str
    email: str
    first_name: str | None
    last_name: str | None
    role: str
    is_platform_admin: bool
    session_id: uuid.UUID | None
    current_organization_id: uuid.UUID | None
    current_organization_role: str | None
    current_organization_name: str | None
    current_organization_slug: str | None


class MeUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first_name: Name | None = Field(default=None, max_length=100)
    last_name: Name | None = Field(default=None, max_length=100)
    email: Email | None = None


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    old_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=PASSWORD_MIN_LENGTH, max_length=1024)


class SessionOut(BaseModel):
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    ip_address: str | None
    user_agent: str | None
    current_organization_id: uuid.UUID | None
    is_current: bool
