"""FinOps answers. Amounts are exact decimals in EUR, sent as strings (JSON numbers
would round them)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field, model_validator


class Share(BaseModel):
    """One slice of a total: a provider, region, type, instance or organization."""

    id: uuid.UUID | None
    code: str | None = None
    name: str | None = None
    cost_eur: Decimal
    share: float | None  # of the total, 0..1


class CostSummary(BaseModel):
    currency: str = "EUR"
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    as_of: datetime
    total_eur: Decimal
    by_provider: list[Share]
    by_region: list[Share]
    by_instance_type: list[Share]
    by_instance: list[Share]
    by_organization: list[Share]


class Point(BaseModel):
    at: datetime
    cost_eur: Decimal


class CostWindow(BaseModel):
    currency: str = "EUR"
    window: str
    grain: str
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    total_eur: Decimal
    series: list[Point]
    by_instance_type: list[Share]
    by_instance: list[Share]


class Series(BaseModel):
    currency: str = "EUR"
    instance_id: uuid.UUID | None
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    points: list[Point]


class CurrentCost(BaseModel):
    currency: str = "EUR"
    as_of: datetime
    running_instances: int
    burn_rate_eur_per_hour: Decimal
    last_minute_eur: Decimal
    last_hour_eur: Decimal
    today_eur: Decimal
    month_to_date_eur: Decimal
    all_time_eur: Decimal


class InstanceForecast(BaseModel):
    instance_id: uuid.UUID
    burn_rate_eur_per_hour: Decimal


class Forecast(BaseModel):
    currency: str = "EUR"
    as_of: datetime
    burn_rate_eur_per_hour: Decimal
    forecast_eur_1h: Decimal
    forecast_eur_1d: Decimal
    forecast_eur_30d: Decimal
    forecast_eur_365d: Decimal
    month_to_date_eur: Decimal
    month_end_projection_eur: Decimal
    by_instance: list[InstanceForecast]


class UsageLine(BaseModel):
    id: uuid.UUID | None
    name: str | None = None
    requests: int
    failed_requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    input_cost_eur: Decimal
    output_cost_eur: Decimal
    token_cost_eur: Decimal


class InstanceUsage(UsageLine):
    gpu_cost_eur: Decimal
    # What the GPU really cost per 1k tokens it served (None: no token served).
    gpu_cost_per_1k_tokens_eur: Decimal | None


class Usage(BaseModel):
    currency: str = "EUR"
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    total: UsageLine
    by_model: list[UsageLine]
    by_api_key: list[UsageLine]
    by_user: list[UsageLine]
    by_instance: list[InstanceUsage]


class TokenCostPoint(BaseModel):
    instance_id: uuid.UUID
    at: datetime
    gpu_cost_eur: Decimal
    tokens: int
    gpu_cost_per_1k_tokens_eur: Decimal | None


class TokenCost(BaseModel):
    currency: str = "EUR"
    granularity: str
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    points: list[TokenCostPoint]


class BudgetIn(BaseModel):
    monthly_budget_eur: Decimal = Field(gt=0, max_digits=14, decimal_places=2)
    alert_thresholds: list[int] = Field(default=[50, 80, 100], max_length=10)
    hard_cap: bool = False
    stop_at_cap: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> BudgetIn:
        if any(not 1 <= t <= 1000 for t in self.alert_thresholds):
            raise ValueError("alert thresholds are percentages between 1 and 1000")
        if len(set(self.alert_thresholds)) != len(self.alert_thresholds):
            raise ValueError("alert thresholds must differ")
        if self.stop_at_cap and not self.hard_cap:
            raise ValueError("stop_at_cap needs hard_cap")
        self.alert_thresholds = sorted(self.alert_thresholds)
        return self


class BudgetAlertOut(BaseModel):
    threshold_percent: int
    spent_eur: Decimal
    fired_at: datetime


class BudgetOut(BaseModel):
    currency: str = "EUR"
    monthly_budget_eur: Decimal | None
    alert_thresholds: list[int]
    hard_cap: bool
    stop_at_cap: bool
    month_to_date_eur: Decimal
    used_percent: float | None
    cap_reached: bool
    alerts_this_month: list[BudgetAlertOut]
