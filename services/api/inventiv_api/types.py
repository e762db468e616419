"""Field types shared by request bodies and query strings: what a name, an email, a
moment and a page offset may be. Text PostgreSQL cannot store at all (NUL, unpaired
surrogates) never gets this far: `middleware.StorableText` refuses it for every route."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from fastapi import Query
from pydantic import AfterValidator, BeforeValidator, GetJsonSchemaHandler, StringConstraints
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

# --- names ---------------------------------------------------------------------------

# Control characters (C0, DEL, C1), line and paragraph separators, and the bidirectional
# embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069): a name shows in
# lists, logs and audit trails, where these break lines or make a name read as another
# ("invoice\u202eexe.pdf"). They are refused rather than stripped: a stripped name is not
# what the caller asked for, may become empty or collide with another, and the caller
# would never learn that their client sends them.
_UNPRINTABLE_SET = r"\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069"
UNPRINTABLE = re.compile(f"[{_UNPRINTABLE_SET}]")


def printable(value: str) -> str:
    found = UNPRINTABLE.search(value)
    if found is not None:
        raise ValueError(
            f"must not contain control or bidirectional-override characters "
            f"(found U+{ord(found.group()):04X})"
        )
    return value


class _PrintableInSchema:
    """Says the rule in the OpenAPI document too (as a pattern), so clients and fuzzers
    generated from it know it; the check itself stays `printable`, whose message names
    the character."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["pattern"] = f"^[^{_UNPRINTABLE_SET}]*$"  # the same in ECMA-262 syntax
        return schema


# Use with Field(min_length=..., max_length=...) for the bounds of each kind of name.
Name = Annotated[str, AfterValidator(printable), _PrintableInSchema()]

# --- emails --------------------------------------------------------------------------

# email-validator rejects the special-use names of RFC 6761 (.local, .test, localhost),
# which self-hosted platforms do use for real mailboxes (the bootstrapped admin is
# admin@inventiv.local). It is asked about the address with one neutral label added to
# the domain, so every other rule it knows (characters, lengths, dots, IDNA, unsafe
# Unicode) still applies; dot-free hosts and .internal or .lan pass as they are.
# Deliverability is the mail system's business: no DNS lookup.
_NEUTRAL_LABEL = "x"  # short: it counts against the length limits


def valid_email(value: str) -> str:
    try:
        checked = validate_email(
            f"{value}.{_NEUTRAL_LABEL}", check_deliverability=False, globally_deliverable=False
        )
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None
    # Normalized: the domain lowercased, Unicode in NFC, so one mailbox is one address.
    return checked.normalized.removesuffix(f".{_NEUTRAL_LABEL}")


Email = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=320), AfterValidator(valid_email)
]

# --- moments -------------------------------------------------------------------------

# Nothing this platform records predates the Unix epoch; the far end leaves room for
# the arithmetic of reports (a range widened by days) and for time zone conversion,
# which past year 9999 overflows.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
_BARE_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def bounded_moment(moment: datetime) -> datetime:
    """`moment` in UTC (taken as UTC when it names no zone); ValueError outside
    [EARLIEST, LATEST)."""
    try:
        moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        raise ValueError("moments are between 1970 and 9000") from None
    if not EARLIEST <= moment < LATEST:
        raise ValueError("moments are between 1970 and 9000")
    return moment


def _not_a_number(value: Any) -> Any:
    # pydantic reads a number as seconds (or milliseconds) since the epoch: `?until=0.5`
    # would silently mean 1970. A moment is written in ISO 8601.
    if isinstance(value, int | float) or (isinstance(value, str) and _BARE_NUMBER.fullmatch(value)):
        raise ValueError("a moment is an ISO 8601 date and time, not a number")
    return value


Moment = Annotated[datetime, BeforeValidator(_not_a_number), AfterValidator(bounded_moment)]

# --- pages ---------------------------------------------------------------------------

# Past a million rows a page is better reached with filters; a bound also keeps the
# value inside PostgreSQL's bigint.
MAX_OFFSET = 1_000_000
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
