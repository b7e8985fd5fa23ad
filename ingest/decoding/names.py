"""What a device may name a field and which values may become tags. Pure.

Devices are untrusted, and a field key or tag value is written into line protocol and read back
by InfluxQL/Flux queries. So names are checked against an allow-list when a message is decoded,
long before anything is encoded:

- a field key is 1-128 characters of ``[A-Za-z0-9_.:/-]`` starting with a letter or digit
  (no leading ``_``: InfluxDB 2.x reserves those for ``_time``, ``_field``, ``_value``…);
- a field may not be named like a tag the pipeline writes (:data:`TAG_KEYS`) or ``time``:
  ``{"device_id": "victim"}`` would otherwise create a field that a query on the tag matches;
- a tag value (SenML unit, registry site and type) is 1-64 characters of ``[A-Za-z0-9_.:/%+-]``;
- a string field value holds no control character except tab (a raw newline would end the
  line-protocol line), no C1 control, no U+2028/U+2029 and no bidi control: device text must
  stay inert in terminals, e-mail headers and chat (the set is ``core.devicetext.UNSAFE``).

Refusals are :class:`core.model.Rejected` with ``INVALID_NAME`` or ``RESERVED_NAME`` (a string
value: ``WRONG_TYPE``).
"""

from __future__ import annotations

import re

from core.devicetext import UNSAFE
from core.model import Reason, Rejected

TAG_KEYS = frozenset({"device_id", "device_type", "site", "unit", "level"})
"""Every tag key the pipeline writes; a field may not shadow one."""
RESERVED_FIELDS = TAG_KEYS | {"time"}
FIELD_KEY_MAX = 128
TAG_VALUE_MAX = 64
FIELD_KEY = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.:/-]{{0,{FIELD_KEY_MAX - 1}}}")
TAG_VALUE = re.compile(rf"[A-Za-z0-9_.:/%+-]{{1,{TAG_VALUE_MAX}}}")
_CONTROL = UNSAFE


def field_key_problem(key: str) -> Rejected | None:
    """Why ``key`` may not be a field key, or None. Cheap for the common (valid) case."""
    if FIELD_KEY.fullmatch(key) is None:
        return Rejected(
            Reason.INVALID_NAME,
            f"field name {key[:40]!r} must be 1-{FIELD_KEY_MAX} of [A-Za-z0-9_.:/-], starting with a letter or digit",
        )
    if key in RESERVED_FIELDS:
        what = "the time goes in 'ts'" if key == "time" else "it is a tag the pipeline writes"
        return Rejected(Reason.RESERVED_NAME, f"field name {key!r} is reserved ({what})")
    return None


def check_field_key(key: str) -> None:
    problem = field_key_problem(key)
    if problem is not None:
        raise problem


def check_tag_value(tag: str, value: str) -> None:
    """Raise INVALID_NAME unless ``value`` may be written as the tag ``tag``."""
    if TAG_VALUE.fullmatch(value) is None:
        raise Rejected(
            Reason.INVALID_NAME,
            f"{tag} {value[:40]!r} cannot be a tag: 1-{TAG_VALUE_MAX} of [A-Za-z0-9_.:/%+-]",
        )


def has_control(text: str) -> bool:
    """True when ``text`` holds a control character other than tab, a line separator or a bidi control."""
    return _CONTROL.search(text) is not None


def check_string_value(key: str, value: str) -> None:
    if _CONTROL.search(value) is not None:
        raise Rejected(
            Reason.WRONG_TYPE,
            f"string field {key[:40]!r} holds a control character (newline, CR, NUL, C1, U+2028, bidi…)",
        )
