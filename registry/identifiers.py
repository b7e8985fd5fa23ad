"""What an identifier may look like: device ids, sites, types, label keys, broker and key names.

One strict charset for every name that reaches a broker file, a tag or a topic: 1-64 characters
of ``[A-Za-z0-9_.:-]`` (no whitespace, newline, backslash, quote, ``/``, ``+`` or ``#``), checked
with ``fullmatch`` (``$`` would let a trailing newline through). Label values are free text
within printable ASCII minus backslash and quotes, up to 256 characters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
NAME_RULE = "1-64 characters of [A-Za-z0-9_.:-]"
LABEL_VALUE = re.compile(r"[ !#-\[\]-~]{0,256}")  # printable ASCII without " and \
LABEL_VALUE_RULE = "up to 256 printable ASCII characters, no quote or backslash"


def check_name(kind: str, value: str) -> str:
    """``value`` when it is a valid ``kind`` (e.g. "device id"), else ValueError (one line)."""
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise ValueError(f"invalid {kind} {value!r}: {NAME_RULE}")
    return value


def check_labels(labels: Mapping[str, Any]) -> dict[str, Any]:
    """Labels with valid keys and string values within :data:`LABEL_VALUE` (booleans and numbers
    pass as they are: they are stored as JSON, never written into a file or a tag)."""
    out: dict[str, Any] = {}
    for key, value in labels.items():
        check_name("label key", key)
        if isinstance(value, str) and not LABEL_VALUE.fullmatch(value):
            raise ValueError(f"invalid value for label {key!r}: {LABEL_VALUE_RULE}")
        if not isinstance(value, str | bool | int | float):
            raise ValueError(f"invalid value for label {key!r}: a string, number or boolean")
        out[key] = value
    return out
