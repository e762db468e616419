"""Settings of the finops process."""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

from pydantic import Field

from inventiv_common.settings import CommonSettings, load_settings


class FinopsSettings(CommonSettings):
    service_name: ClassVar[str] = "inventiv-finops"

    port: int = Field(default=8005, ge=1, le=65535, validation_alias="FINOPS_PORT")
    # How often the finops pass runs (minutes are billed once complete, so a pass
    # every 15 s bills each minute within 15 s of its end).
    finops_interval_s: float = Field(default=15.0, gt=0, validation_alias="FINOPS_INTERVAL_S")


@lru_cache
def get_settings() -> FinopsSettings:
    return load_settings(FinopsSettings)
