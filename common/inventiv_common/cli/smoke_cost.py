"""What a smoke run's instance cost: the finops figure when finops has billed it, else an
estimate from the type's hourly price, and the report says which.

Finops bills every minute from the one the server was created in to the one the
instance ended in, each in full, once that minute is over; its pass runs every
FINOPS_INTERVAL_S. So the exact figure exists about a minute after termination: it is
waited for (`wait_s`), then the estimate is given instead, counted the same way from the
instance's request to its end (an upper bound: the server is made a little after the
request).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx

MINUTE = timedelta(minutes=1)
POLL_S = 5.0


@dataclass(frozen=True)
class Cost:
    eur: Decimal
    minutes: int
    source: str  # finops | estimate | none
    note: str = ""

    def sentence(self) -> str:
        amount = self.eur.quantize(Decimal("0.0001"), ROUND_HALF_UP)
        said = f"{amount} EUR for {self.minutes} GPU minute(s), {self.source}"
        return f"{said} ({self.note})" if self.note else said


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def estimate(hourly: Decimal, minutes: int, note: str) -> Cost:
    return Cost(hourly * minutes / 60, minutes, "estimate", note)


def cost_of(http: httpx.Client, instance: dict[str, Any], hourly: Decimal, wait_s: float) -> Cost:
    ended_at = instance.get("terminated_at")
    if not instance.get("provider_instance_id"):
        return Cost(Decimal(0), 0, "none", "no server was made at the provider")
    first = _minute(_moment(instance["created_at"]))
    last = _minute(_moment(ended_at) if ended_at else datetime.now(UTC))
    minutes = int((last - first) / MINUTE) + 1
    so_far = "" if ended_at else ", so far: the instance has not ended"
    shape = f"{minutes} min x {hourly} EUR/h / 60, counted from the request{so_far}"
    if not ended_at:
        return estimate(hourly, minutes, shape)
    deadline = time.monotonic() + wait_s
    billed: list[dict[str, Any]] = []
    while True:
        answer = http.get(
            "/finops/cost/cumulative/minute",
            params={
                "instance_id": instance["id"],
                "from": first.isoformat(),
                "to": (last + MINUTE).isoformat(),
            },
        )
        if answer.status_code == 403:
            return estimate(hourly, minutes, f"{shape}; finops reports are not readable here")
        if answer.status_code == 200:
            billed = answer.json()["points"]
            if billed and _complete(http, billed, last):
                total = Decimal(str(billed[-1]["cost_eur"]))
                return Cost(total, len(billed), "billed by finops")
        if time.monotonic() + POLL_S > deadline:
            break
        time.sleep(POLL_S)
    return estimate(
        hourly,
        minutes,
        f"{shape}; finops had billed {len(billed)} minute(s) within {wait_s:.0f}s",
    )


def _complete(http: httpx.Client, points: list[dict[str, Any]], last: datetime) -> bool:
    """Finops billed the instance to its end: its last minute is there, or the billing
    watermark is past the end (an instance that failed stops billing when it failed)."""
    if _moment(points[-1]["at"]) >= last:
        return True
    current = http.get("/finops/cost/current")
    return current.status_code == 200 and _moment(current.json()["as_of"]) > last
