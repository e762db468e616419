"""Time ranges for cost reports: parsing (a bad one is a 400), windows, and how a
range is cut into the coarsest stored buckets that cover it exactly.

A range [start, end) on minute boundaries is read as whole days from the day table,
whole hours from the hour table, and the ragged minutes at either end from the minute
table: exact to the minute, and a 30-day report reads about 30 rows per instance
rather than 43,200.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from inventiv_api.errors import ApiError, excerpt
from inventiv_api.types import bounded_moment

MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


@dataclass(frozen=True)
class Window:
    length: timedelta
    grain: str  # the series' bucket, and the coarsest table read


WINDOWS = {
    "minute": Window(MINUTE, "minute"),
    "hour": Window(HOUR, "minute"),
    "day": Window(DAY, "hour"),
    "30d": Window(30 * DAY, "day"),
    "365d": Window(365 * DAY, "day"),
}


def bad_range(message: str) -> ApiError:
    return ApiError(400, "bad_range", message)


def parse_moment(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 moment between 1970 and 9000, in UTC (taken as UTC when it names no
    zone), or None when absent."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        # Not the parser's message: it quotes the whole value.
        raise bad_range(f"`{name}` is not an ISO 8601 date and time: {excerpt(value)!r}") from None
    try:
        return bounded_moment(moment)
    except ValueError as exc:
        raise bad_range(f"`{name}`: {exc}") from None


def window(name: str) -> Window:
    found = WINDOWS.get(name)
    if found is None:
        raise ApiError(
            400, "bad_window", f"unknown window {excerpt(name)!r}; one of {', '.join(WINDOWS)}"
        )
    return found


def floor_to(moment: datetime, step: timedelta) -> datetime:
    moment = moment.astimezone(UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((moment - epoch) // step) * step


def ceil_to(moment: datetime, step: timedelta) -> datetime:
    floor = floor_to(moment, step)
    return floor if floor == moment else floor + step


def checked_range(
    start: datetime | None,
    end: datetime | None,
    *,
    default_end: datetime,
    default_length: timedelta,
    longest: timedelta,
    step: timedelta = MINUTE,
) -> tuple[datetime, datetime]:
    """[start, end) widened to `step` boundaries; 400 when reversed or too long."""
    end = end or default_end
    start = start or end - default_length
    if start >= end:
        raise bad_range("`from` must be before `to`")
    start, end = floor_to(start, step), ceil_to(end, step)
    if end - start > longest:
        raise bad_range(f"at most {longest.days} day(s) at a time, asked for {end - start}")
    return start, end


def segments(start: datetime, end: datetime, coarsest: str) -> list[tuple[str, datetime, datetime]]:
    """(grain, lo, hi) pieces covering [start, end) exactly, each read from the table
    of its grain; `coarsest` caps the grain (a series by hour must not read days)."""
    if end <= start:
        return []
    if coarsest == "minute":
        return [("minute", start, end)]
    hour_lo, hour_hi = ceil_to(start, HOUR), floor_to(end, HOUR)
    if hour_lo >= hour_hi:
        return [("minute", start, end)]
    pieces = [("minute", start, hour_lo), ("minute", hour_hi, end)]
    day_lo, day_hi = ceil_to(hour_lo, DAY), floor_to(hour_hi, DAY)
    if coarsest == "hour" or day_lo >= day_hi:
        pieces.append(("hour", hour_lo, hour_hi))
    else:
        pieces += [("hour", hour_lo, day_lo), ("hour", day_hi, hour_hi), ("day", day_lo, day_hi)]
    return [(grain, lo, hi) for grain, lo, hi in pieces if lo < hi]
