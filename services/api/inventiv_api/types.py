"""Field types shared by request bodies and query strings: what a name, an email, a
moment and a page offset may be. Text PostgreSQL cannot store at all (NUL, unpaired
surrogates) never gets this far: `middleware.StorableText` refuses it for every route."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from fastapi import Query
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetJsonSchemaHandler,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

# --- names ---------------------------------------------------------------------------

# Control characters (C0, DEL, C1), line and paragraph separators, and the bidirectional
# marks, embeddings, overrides and isolates (U+061C, U+200E-U+200F, U+202A-U+202E,
# U+2066-U+2069): a name shows in
# lists, logs and audit trails, where these break lines or make a name read as another
# ("invoice\u202eexe.pdf"). They are refused rather than stripped: a stripped name is not
# what the caller asked for, may become empty or collide with another, and the caller
# would never learn that their client sends them.
_UNPRINTABLE_SET = (
    r"\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
)
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


# The longest address email-validator takes is 254 characters; ours is asked with two
# more (the neutral label), so 252. The OpenAPI document says `format: email`.
EMAIL_MAX_LENGTH = 254 - len(_NEUTRAL_LABEL) - 1
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=EMAIL_MAX_LENGTH),
    AfterValidator(valid_email),
    Field(json_schema_extra={"format": "email"}),
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


# The years the OpenAPI document allows: 1971 to 8998, so that no UTC offset (at most a
# day) takes an allowed moment out of [EARLIEST, LATEST).
MOMENT_PATTERN = r"^(197[1-9]|19[89][0-9]|[2-7][0-9]{3}|8[0-8][0-9]{2}|89[0-8][0-9]|899[0-8])-"


class _BoundedInSchema:
    """Says the bounds in the OpenAPI document too, as a pattern on the year."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["pattern"] = MOMENT_PATTERN
        return schema


Moment = Annotated[
    datetime,
    BeforeValidator(_not_a_number),
    AfterValidator(bounded_moment),
    _BoundedInSchema(),
]

# --- pages ---------------------------------------------------------------------------

# Past a million rows a page is better reached with filters; a bound also keeps the
# value inside PostgreSQL's bigint.
MAX_OFFSET = 1_000_000
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]

# --- counts --------------------------------------------------------------------------


def _json_integer(value: Any) -> Any:
    # JSON Schema's "integer" is any number without a fraction (5 and 5.0), never `true`
    # (which Python counts as 1) nor the string "5": what the document says is accepted.
    if isinstance(value, bool | str):
        raise ValueError("a whole number is a JSON number, not a boolean or a string")
    return value


# A whole number in a body: `Annotated[int, Field(ge=..., le=...), WholeNumber]`, the
# bounds before it (after it, the OpenAPI document could not state them); 5.5 is
# refused by `int` itself.
WholeNumber = BeforeValidator(_json_integer)


# --- money ---------------------------------------------------------------------------


def money(*, whole_digits: int, decimals: int, positive: bool = False) -> Any:
    """An amount in EUR the caller sends: a decimal string in ASCII digits ("12.50", no
    sign, exponent, spaces or leading zeros) or a whole JSON number, at most `whole_digits`
    digits before the point and `decimals` after; above zero when `positive`.

    Numbers with a fraction are refused: 0.1 is not exact in binary, an amount is. The
    OpenAPI document gives the same rule as a pattern in ASCII classes (`\\d` also
    matches other scripts' digits in some regex engines, which Decimal would refuse)."""
    fraction = f"(\\.[0-9]{{1,{decimals}}})?"
    if positive:
        # Below one: some digit after the point is not a zero ("0.05", "0.5", not "0.00").
        small = "|".join(
            f"0\\.[0-9]{{{i}}}[1-9][0-9]{{0,{decimals - i - 1}}}" for i in range(decimals)
        )
        pattern = f"^([1-9][0-9]{{0,{whole_digits - 1}}}{fraction}|{small})$"
    else:
        pattern = f"^(0|[1-9][0-9]{{0,{whole_digits - 1}}}){fraction}$"
    shape = re.compile(pattern)
    largest = 10**whole_digits - 1

    def parse(value: Any) -> Decimal:
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 12.0 is a whole number in JSON as in JSON Schema
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not shape.fullmatch(value):
            raise ValueError(
                f'an amount is a decimal string like "12.50" or a whole number: at most '
                f"{whole_digits} digits before the point and {decimals} after"
                + (", above zero" if positive else "")
            )
        return Decimal(value)

    schema = {
        "anyOf": [
            {"type": "string", "pattern": pattern},
            {"type": "integer", "minimum": 1 if positive else 0, "maximum": largest},
        ]
    }
    return Annotated[Decimal, PlainValidator(parse), WithJsonSchema(schema, mode="validation")]


# Prices (per hour, per 1,000 tokens): the columns' NUMERIC(14, 6).
Price = money(whole_digits=8, decimals=6)
# A monthly budget: NUMERIC(14, 2), and a budget of nothing is no budget.
Budget = money(whole_digits=12, decimals=2, positive=True)
