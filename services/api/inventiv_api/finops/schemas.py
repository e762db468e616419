"""FinOps answers. Amounts are exact decimals in EUR, sent as strings (JSON numbers
would round them)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, StrictBool, model_validator

from inventiv_api.types import Budget, WholeNumber

# Money out: a plain decimal string, never exponent notation ("0.0000002", not "2E-7").
Money = Annotated[
    Decimal, PlainSerializer(lambda amount: format(amount, "f"), return_type=str, when_used="json")
]


class Share(BaseModel):
    """One slice of a total: a provider, region, type, instance or organization."""

    id: uuid.UUID | None
    code: str | None = None
    name: str | None = None
    cost_eur: Money
    share: float | None  # of the total, 0..1


class CostSummary(BaseModel):
    currency: str = "EUR"
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    as_of: datetime
    total_eur: Money
    by_provider: list[Share]
    by_region: list[Share]
    by_instance_type: list[Share]
    by_instance: list[Share]
    by_organization: list[Share]


class Point(BaseModel):
    at: datetime
    cost_eur: Money


class CostWindow(BaseModel):
    currency: str = "EUR"
    window: str
    grain: str
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    total_eur: Money
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
    burn_rate_eur_per_hour: Money
    last_minute_eur: Money
    last_hour_eur: Money
    today_eur: Money
    month_to_date_eur: Money
    all_time_eur: Money


class InstanceForecast(BaseModel):
    instance_id: uuid.UUID
    burn_rate_eur_per_hour: Money


class Forecast(BaseModel):
    currency: str = "EUR"
    as_of: datetime
    burn_rate_eur_per_hour: Money
    forecast_eur_1h: Money
    forecast_eur_1d: Money
    forecast_eur_30d: Money
    forecast_eur_365d: Money
    month_to_date_eur: Money
    month_end_projection_eur: Money
    by_instance: list[InstanceForecast]


class UsageLine(BaseModel):
    id: uuid.UUID | None
    name: str | None = None
    requests: int
    failed_requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    input_cost_eur: Money
    output_cost_eur: Money
    token_cost_eur: Money


class InstanceUsage(UsageLine):
    gpu_cost_eur: Money
    # What the GPU really cost per 1k tokens it served (None: no token served).
    gpu_cost_per_1k_tokens_eur: Money | None


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
    gpu_cost_eur: Money
    tokens: int
    gpu_cost_per_1k_tokens_eur: Money | None


class TokenCost(BaseModel):
    currency: str = "EUR"
    granularity: str
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    points: list[TokenCostPoint]


# A percentage of the budget, a whole number (types.WholeNumber).
ThresholdPercent = Annotated[int, Field(ge=1, le=1000), WholeNumber]


class BudgetIn(BaseModel):
    model_config = ConfigDict(
        # stop_at_cap needs hard_cap: said in the OpenAPI document too.
        json_schema_extra={
            "anyOf": [
                {"properties": {"stop_at_cap": {"const": False}}},
                {"required": ["hard_cap"], "properties": {"hard_cap": {"const": True}}},
            ]
        }
    )

    monthly_budget_eur: Budget
    # Percentages of the budget, each named once.
    alert_thresholds: list[ThresholdPercent] = Field(
        default=[50, 80, 100], max_length=10, json_schema_extra={"uniqueItems": True}
    )
    hard_cap: StrictBool = False
    stop_at_cap: StrictBool = False

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
    spent_eur: Money
    fired_at: datetime


class BudgetOut(BaseModel):
    currency: str = "EUR"
    monthly_budget_eur: Money | None
    alert_thresholds: list[int]
    hard_cap: bool
    stop_at_cap: bool
    month_to_date_eur: Money
    used_percent: float | None
    cap_reached: bool
    alerts_this_month: list[BudgetAlertOut]
