from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from inventiv_api.auth.schemas import PASSWORD_MIN_LENGTH
from inventiv_api.types import Email, Name

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$"


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    email: str
    first_name: str | None
    last_name: str | None
    role: str
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=USERNAME_PATTERN)
    email: Email
    password: str = Field(min_length=PASSWORD_MIN_LENGTH, max_length=1024)
    first_name: Name | None = Field(default=None, max_length=100)
    last_name: Name | None = Field(default=None, max_length=100)
    role: Literal["admin", "user"] = "user"


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email | None = None
    first_name: Name | None = Field(default=None, max_length=100)
    last_name: Name | None = Field(default=None, max_length=100)
    role: Literal["admin", "user"] | None = None
    is_active: StrictBool | None = None
    password: str | None = Field(default=None, min_length=PASSWORD_MIN_LENGTH, max_length=1024)
