"""Timestamps as devices send them -> integer nanoseconds since the Unix epoch. Pure.

Numbers are epoch time in a unit told apart by magnitude (``x`` is the absolute value):

=====================  ============  ===============================================
range                  unit          why the bands don't overlap in practice
=====================  ============  ===============================================
``x < 1e11``           seconds       1e11 s is the year 5138
``1e11 <= x < 1e14``   milliseconds  1e11 ms is 1973-03-03; 1e14 ms is the year 5138
``1e14 <= x < 1e17``   microseconds  1e14 us is 1973-03-03
``x >= 1e17``          nanoseconds   1e17 ns is 1973-03-03; must stay below 2**63
=====================  ============  ===============================================

So any time after March 1973 is read correctly in any of the four units. Negative times
and times at or beyond 2**63 ns (2262-04-11, the end of InfluxDB's range) are rejected.
Fractional values are honoured down to the microsecond (a double holds no more than that
for present-day epoch seconds).

Strings are RFC 3339: ``YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)``; ``t``/``z`` and
a space instead of ``T`` are accepted, a leap second ``:60`` is read as the next second,
fractions are exact to the nanosecond. A missing offset is rejected (it would be ambiguous).
"""

from __future__ import annotations

import math
from datetime import date

NS_PER_S = 1_000_000_000
MAX_NS = 2**63 - 1
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


class BadTimestamp(ValueError):
    """The value cannot be read as a timestamp (message: why)."""


def number_to_ns(x: object) -> int:
    """Epoch time in s / ms / us / ns (by magnitude, see module docstring) -> ns."""
    if type(x) is int:
        if x < 0:
            raise BadTimestamp("negative timestamp")
        if x < 100_000_000_000:
            ns = x * NS_PER_S
        elif x < 100_000_000_000_000:
            ns = x * 1_000_000
        elif x < 100_000_000_000_000_000:
            ns = x * 1_000
        else:
            ns = x
    elif type(x) is float:
        if not math.isfinite(x) or x < 0:
            raise BadTimestamp("negative or non-finite timestamp")
        if x < 1e11:
            ns = round(x * 1e6) * 1_000
        elif x < 1e14:
            ns = round(x * 1e3) * 1_000
        elif x < 1e17:
            ns = round(x) * 1_000
        elif x < 9.2e18:
            ns = int(x)
        else:
            raise BadTimestamp("timestamp out of range")
    else:
        raise BadTimestamp(f"timestamp must be a number or an RFC 3339 string, not {_tn(x)}")
    if ns > MAX_NS:
        raise BadTimestamp("timestamp out of range")
    return ns


def seconds_to_ns(t: float) -> int:
    """Absolute epoch seconds (SenML time) -> ns, rounded to the microsecond."""
    if not (0.0 <= t < 9.2e9):
        raise BadTimestamp("time out of range")
    return round(t * 1e6) * 1_000


def _digits(s: str, a: int, b: int) -> int:
    part = s[a:b]
    if len(part) != b - a or not (part.isascii() and part.isdigit()):
        raise BadTimestamp(f"not an RFC 3339 timestamp: {s[:40]!r}")
    return int(part)


def rfc3339_to_ns(s: str) -> int:
    """Parse an RFC 3339 timestamp with an offset -> ns since the epoch."""
    if len(s) < 20 or s[4] != "-" or s[7] != "-" or s[10] not in "Tt " or s[13] != ":" or s[16] != ":":
        raise BadTimestamp(f"not an RFC 3339 timestamp: {s[:40]!r}")
    year, month, day = _digits(s, 0, 4), _digits(s, 5, 7), _digits(s, 8, 10)
    hour, minute, sec = _digits(s, 11, 13), _digits(s, 14, 16), _digits(s, 17, 19)
    i = 19
    frac_ns = 0
    if s[i] == ".":
        j = i + 1
        while j < len(s) and "0" <= s[j] <= "9":
            j += 1
        frac = s[i + 1 : j]
        if not frac:
            raise BadTimestamp(f"empty fraction in {s[:40]!r}")
        frac_ns = int((frac + "000000000")[:9])
        i = j
    rest = s[i:]
    if rest in ("Z", "z"):
        offset = 0
    elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
        oh, om = _digits(rest, 1, 3), _digits(rest, 4, 6)
        if oh > 23 or om > 59:
            raise BadTimestamp(f"bad UTC offset in {s[:40]!r}")
        offset = (oh * 3600 + om * 60) * (1 if rest[0] == "+" else -1)
    else:
        raise BadTimestamp(f"RFC 3339 timestamp needs Z or a +HH:MM offset: {s[:40]!r}")
    if hour > 23 or minute > 59 or sec > 60:
        raise BadTimestamp(f"bad time of day in {s[:40]!r}")
    try:
        days = date(year, month, day).toordinal() - _EPOCH_ORDINAL
    except ValueError as e:
        raise BadTimestamp(f"bad date in {s[:40]!r}: {e}") from None
    ns = (days * 86400 + hour * 3600 + minute * 60 + sec - offset) * NS_PER_S + frac_ns
    if ns < 0 or ns > MAX_NS:
        raise BadTimestamp(f"timestamp out of range: {s[:40]!r}")
    return ns


def to_ns(value: object) -> int:
    """A JSON ``ts`` value (number or RFC 3339 string) -> ns. Raises BadTimestamp."""
    if type(value) is str:
        return rfc3339_to_ns(value)
    return number_to_ns(value)


def _tn(x: object) -> str:
    return "null" if x is None else type(x).__name__
