"""The seam for reading payload formats: what a codec is given, what it returns, and the strict
JSON text parsing the JSON-based codecs share. Pure, no I/O.

A codec turns one telemetry / metrics / events payload into points, or raises ``Rejected``. It
claims payloads by their first non-whitespace byte (``{`` for a JSON object, ``[`` for a SenML
JSON pack; a binary format such as SenML CBOR would claim ``0x80``-``0x9f``). Codecs are
registered in ``ingest.decoding.decode.CODECS``; a payload no codec claims is refused with the reason
its JSON parse gives.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from core.model import Decoded, Kind, Point, Reason, Rejected

_orjson_loads: Callable[[bytes], Any] | None
try:  # C parser for the hot path (~8x faster); the stdlib decoder remains the reference
    from orjson import loads as _orjson_loads
except ImportError:  # pragma: no cover
    _orjson_loads = None

WHITESPACE = frozenset(b" \t\r\n")


@dataclass(frozen=True, slots=True)
class Source:
    """Where a reading message came from and the limits that apply to it: built once per topic
    (the decoder caches it), so a codec call costs no per-message object."""

    device_id: str
    kind: Kind  # TELEMETRY, METRICS or EVENTS
    measurement: str
    max_fields: int = 256  # more distinct fields in one message -> TOO_MANY_FIELDS
    max_units: int = 16  # more distinct units in one message -> TOO_MANY_FIELDS
    fast_json: bool = True  # try orjson first (parse_json); False: the stdlib reference path only
    codec: SourceCodec | None = None  # set by a topic rule (a mapping, Sparkplug B): decodes every payload


class SourceCodec(Protocol):
    """The payload reader a topic rule names (``Source.codec``): the decoder hands it every payload
    of that topic, whatever its first byte; it returns points, a status change (a status topic) or
    any other ``Decoded`` (Sparkplug B: a birth's readings and status together, a
    :class:`core.model.Bundle`), or raises ``Rejected`` (and nothing else)."""

    name: str

    def decode(self, source: Source, payload: bytes, now_ns: int, latest_ns: int) -> Decoded: ...


class Codec(Protocol):
    """One payload format. Built once; ``decode`` is called from one thread at a time."""

    name: str
    kinds: frozenset[Kind]  # the reading kinds it accepts
    first_bytes: frozenset[int]  # the payloads it claims, by first non-whitespace byte

    def decode(self, source: Source, payload: bytes, now_ns: int, latest_ns: int) -> list[Point]:
        """Points for ``payload`` (its size already checked) received at ``now_ns``; a timestamp
        after ``latest_ns`` is FUTURE_TIMESTAMP. Raises ``Rejected`` (and nothing else) for a bad
        payload."""
        ...


def first_byte(payload: bytes) -> int:
    """The first byte that is not JSON whitespace; -1 for an empty or blank payload."""
    for b in payload:
        if b not in WHITESPACE:
            return b
    return -1


class NonFinite(Exception):
    pass


class IntRange(Exception):
    pass


def reject_constant(name: str) -> Any:
    raise NonFinite(name)


def finite_float(text: str) -> float:
    f = float(text)
    if f - f != 0.0:
        raise NonFinite(text[:32])
    return f


def int64(text: str) -> int:
    i = int(text)
    if not -(2**63) <= i <= 2**63 - 1:
        raise IntRange(text[:32])
    return i


def json_loads() -> Callable[[str], Any]:
    """A JSON text parser refusing NaN and Infinity (floats overflowing to inf are caught later)."""
    return json.JSONDecoder(parse_constant=reject_constant).decode


def parse_json(payload: bytes, loads: Callable[[str], Any], fast: bool = True) -> Any:
    """Strict UTF-8, then JSON; every failure is ``Rejected`` with its reason. With ``fast``,
    orjson parses first: it accepts a subset of what ``loads`` accepts and yields the same values
    for it (tests/test_decode_orjson.py holds it to that); whatever it refuses takes the exact
    path, which names the reason."""
    if fast and _orjson_loads is not None:
        try:
            return _orjson_loads(payload)
        except ValueError:
            pass
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Rejected(Reason.INVALID_UTF8, f"invalid UTF-8 at byte {e.start}") from None
    return parse_json_text(text, loads)


def parse_json_text(text: str, loads: Callable[[str], Any]) -> Any:
    """JSON from already decoded text; every failure is ``Rejected`` with its reason."""
    try:
        return loads(text)
    except NonFinite as e:
        raise Rejected(Reason.NON_FINITE, f"{e} is not a finite number") from None
    except IntRange as e:
        raise Rejected(Reason.WRONG_TYPE, f"integer {e} outside 64 bits") from None
    except RecursionError:
        raise Rejected(Reason.INVALID_JSON, "JSON nested too deeply") from None
    except ValueError as e:
        raise Rejected(Reason.INVALID_JSON, str(e)[:120]) from None
