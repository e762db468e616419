"""Settings of the finops process."""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

from pydantic import Field

from inventiv_common.settings import CommonSettings, load_settings


class FinopsSettings(CommonSettings):
    service_name: ClassVar[str] = "inventiv-finops"

    port: int = Field(default=8005, ge=1, le=65535, validation_alias="FINOPS_PORT")


@lru_cache
def get_settings() -> FinopsSettings:
    return load_settings(FinopsSettings)
