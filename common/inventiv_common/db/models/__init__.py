"""Every ORM model, imported here so `Base.metadata` knows all tables."""

from inventiv_common.db.models.audit import AuditLog
from inventiv_common.db.models.base import Base
from inventiv_common.db.models.catalog import (
    InstanceType,
    InstanceTypeZone,
    Model,
    Provider,
    Region,
    Zone,
)
from inventiv_common.db.models.finops import (
    BillingProgress,
    BillingState,
    Budget,
    BudgetAlert,
    CostActualDay,
    CostActualHour,
    CostActualMinute,
    CostCumulativeMinute,
    CostForecastMinute,
    CostOrgBucket,
    InferenceUsage,
    UsageHour,
)
from inventiv_common.db.models.identity import (
    ApiKey,
    Organization,
    OrganizationInvitation,
    OrganizationMembership,
    ProviderSetting,
    User,
    UserSession,
    WorkerAuthToken,
)
from inventiv_common.db.models.instances import ActionLog, ActionType, Instance, InstanceVolume
from inventiv_common.db.models.mock_provider import MockServer, MockVolume
from inventiv_common.db.models.observability import (
    GpuSample,
    InstanceRequestMetrics,
    SystemSample,
)

__all__ = [
    "ActionLog",
    "ActionType",
    "ApiKey",
    "AuditLog",
    "Base",
    "BillingProgress",
    "BillingState",
    "Budget",
    "BudgetAlert",
    "CostActualDay",
    "CostActualHour",
    "CostActualMinute",
    "CostCumulativeMinute",
    "CostForecastMinute",
    "CostOrgBucket",
    "GpuSample",
    "InferenceUsage",
    "Instance",
    "InstanceRequestMetrics",
    "InstanceType",
    "InstanceTypeZone",
    "InstanceVolume",
    "MockServer",
    "MockVolume",
    "Model",
    "Organization",
    "OrganizationInvitation",
    "OrganizationMembership",
    "Provider",
    "ProviderSetting",
    "Region",
    "SystemSample",
    "UsageHour",
    "User",
    "UserSession",
    "WorkerAuthToken",
    "Zone",
]
