"""Every message that travels on the bus: its name, its channel, its payload.

This is the one list. A sender names a message from here; a consumer subscribes to the
channel written here; the README's channel table is this table. A message is a wake-up
hint sent after the commit that made it true (see `inventiv_common.bus`): what it
carries helps a consumer go straight to the work, and PostgreSQL stays the truth.

Commands (`CMD:*`) ask the orchestrator to act; events (`EVT:*`) say what happened.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from enum import StrEnum
from typing import TypedDict


class Channel(StrEnum):
    """Redis pub/sub channels (each prefixed with `REDIS_CHANNEL_PREFIX`)."""

    # Commands for the orchestrator, and what its replicas tell one another.
    orchestrator = "orchestrator_events"
    # Usage, costs and budgets: what the finops service consumes.
    finops = "finops_events"
    # Instance state changes: the api's live feed and the gateway's route table.
    instances = "instance_events"


# --- payloads ---------------------------------------------------------------------


class InstanceRef(TypedDict):
    instance_id: str


class NoPayload(TypedDict):
    pass


class ProviderRef(TypedDict):
    provider: str


# `from` is a Python keyword, hence the functional form.
InstanceChanged = TypedDict(
    "InstanceChanged", {"instance_id": str, "from": str, "to": str, "progress": int}
)


class TokensRevoked(TypedDict):
    replica: str  # the sender, which ignores its own notice
    instances: list[str]


class UsageRecorded(TypedDict):
    records: int


class CostsComputed(TypedDict):
    upto: str
    instance_minutes: int
    instances: int


class BudgetReached(TypedDict):
    threshold_percent: int
    spent_eur: str
    budget_eur: str
    month: str


@dataclass(frozen=True)
class Message:
    type: str
    channel: Channel
    payload: builtins.type  # a TypedDict: the keys of `Envelope.payload`
    sent_by: str
    heard_by: str
    meaning: str


# --- commands -----------------------------------------------------------------------

CMD_PROVISION = "CMD:PROVISION"
CMD_TERMINATE = "CMD:TERMINATE"
CMD_SYNC_CATALOG = "CMD:SYNC_CATALOG"
CMD_RECONCILE = "CMD:RECONCILE"
CMD_CHECK_CREDENTIALS = "CMD:CHECK_CREDENTIALS"

# --- events -------------------------------------------------------------------------

EVT_INSTANCE_STATUS_CHANGED = "EVT:INSTANCE_STATUS_CHANGED"
EVT_WORKER_TOKENS_REVOKED = "EVT:WORKER_TOKENS_REVOKED"
EVT_INFERENCE_USAGE_RECORDED = "EVT:INFERENCE_USAGE_RECORDED"
EVT_COSTS_COMPUTED = "EVT:COSTS_COMPUTED"
EVT_BUDGET_THRESHOLD_REACHED = "EVT:BUDGET_THRESHOLD_REACHED"
EVT_BUDGET_CAP_REACHED = "EVT:BUDGET_CAP_REACHED"

C = Channel
MESSAGES: dict[str, Message] = {
    m.type: m
    for m in (
        Message(CMD_PROVISION, C.orchestrator, InstanceRef, "api", "orchestrator",
                "a deployment was recorded: provision its instance"),
        Message(CMD_TERMINATE, C.orchestrator, InstanceRef, "api, finops", "orchestrator",
                "an instance's termination was requested (its flag is set)"),
        Message(CMD_SYNC_CATALOG, C.orchestrator, NoPayload, "api", "orchestrator",
                "sync prices and zone offers from the providers now"),
        Message(CMD_RECONCILE, C.orchestrator, NoPayload, "api", "orchestrator",
                "run the health, watchdog and storage passes now"),
        Message(CMD_CHECK_CREDENTIALS, C.orchestrator, ProviderRef, "api", "orchestrator",
                "an organization saved credentials: check them with the provider"),
        Message(EVT_WORKER_TOKENS_REVOKED, C.orchestrator, TokensRevoked, "orchestrator",
                "orchestrator", "drop these instances' cached worker tokens"),
        Message(EVT_INSTANCE_STATUS_CHANGED, C.instances, InstanceChanged, "orchestrator",
                "api", "an instance changed state"),
        Message(EVT_INFERENCE_USAGE_RECORDED, C.finops, UsageRecorded, "api", "finops",
                "a batch of gateway usage records was written: price it"),
        Message(EVT_COSTS_COMPUTED, C.finops, CostsComputed, "finops", "nobody yet",
                "the minute job billed GPU minutes up to `upto`"),
        Message(EVT_BUDGET_THRESHOLD_REACHED, C.finops, BudgetReached, "finops",
                "nobody yet", "an organization's spend crossed an alert threshold"),
        Message(EVT_BUDGET_CAP_REACHED, C.finops, BudgetReached, "finops", "nobody yet",
                "an organization's spend reached its hard cap"),
    )
}  # fmt: skip


def channel_of(message_type: str) -> Channel:
    """Where a message goes. A name not listed here (tests, a newer sender) follows the
    default rule: commands to the orchestrator, events to finops."""
    known = MESSAGES.get(message_type)
    if known is not None:
        return known.channel
    return Channel.orchestrator if message_type.startswith("CMD:") else Channel.finops


def channels_heard_by(process: str) -> list[Channel]:
    """The channels a process subscribes to: those of the messages it consumes."""
    return sorted({m.channel for m in MESSAGES.values() if process in m.heard_by})
