"""Find exactly the points a server refused when it only says "some lines were bad".

InfluxDB 1.x/2.x answer a partial write with one error for the whole request and store the
good points. Writes are idempotent, so re-sending halves is safe: bisect until each refusal is
pinned to a single point. ``k`` bad points in ``n`` cost about ``2·k·log2(n)`` extra requests.
InfluxDB 3 names the refused lines itself (``data[].line_number``): those are taken as they are.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from core.model import Point
from ingest.stores.lineprotocol import encode_batch

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LineErrors:
    """The server named the refused lines (InfluxDB 3: ``data[].line_number``): 0-based index in
    the request → reason. ``complete`` when it listed them all (3.x reports at most 100)."""

    errors: dict[int, str]
    complete: bool = True


SendResult = str | LineErrors | None
"""What a ``send(lines)`` returns: None (all stored), the server's one reason (some refused,
which unknown), or the refused lines by index."""
SendFn = Callable[[Sequence[str]], SendResult]


def bisect_rejections(items: Sequence[T], lines: Sequence[str], send: SendFn) -> list[tuple[T, str]]:
    """``send(lines)`` (may raise StoreUnavailable, which propagates). Returns [(item, reason)]
    for refused items."""
    return _resolve(items, lines, send, send(lines))


def _resolve(items: Sequence[T], lines: Sequence[str], send: SendFn, outcome: SendResult) -> list[tuple[T, str]]:
    if outcome is None:
        return []
    if isinstance(outcome, LineErrors):
        named = {i: why for i, why in outcome.errors.items() if 0 <= i < len(items)}
        if named:
            pinned = [(items[i], why) for i, why in sorted(named.items())]
            rest = [i for i in range(len(items)) if i not in named]
            if outcome.complete or not rest:
                return pinned
            # more refused than listed: the unlisted ones again (idempotent), pinned the same way
            return pinned + bisect_rejections([items[i] for i in rest], [lines[i] for i in rest], send)
        outcome = next(iter(outcome.errors.values()), "refused by the server")
    return _split(items, lines, send, outcome)


def _split(items: Sequence[T], lines: Sequence[str], send: SendFn, reason: str) -> list[tuple[T, str]]:
    if len(items) == 1:
        return [(items[0], reason)]
    mid = len(items) // 2
    out: list[tuple[T, str]] = []
    for lo, hi in ((0, mid), (mid, len(items))):
        out.extend(_resolve(items[lo:hi], lines[lo:hi], send, send(lines[lo:hi])))
    return out


def send_halves(lines: Sequence[str], send: SendFn, too_large: str) -> SendResult:
    """For a request the server found too large (HTTP 413): send each half (each may be split
    again); a single line too large is refused for good with ``too_large``."""
    if len(lines) == 1:
        return LineErrors({0: too_large})
    mid = len(lines) // 2
    first, second = send(lines[:mid]), send(lines[mid:])
    if first is None and second is None:
        return None
    if isinstance(first, str) or isinstance(second, str):
        return first if isinstance(first, str) else second  # bisected by the caller
    errors: dict[int, str] = {}
    complete = True
    for outcome, offset in ((first, 0), (second, mid)):
        if isinstance(outcome, LineErrors):
            errors.update({i + offset: why for i, why in outcome.errors.items()})
            complete = complete and outcome.complete
    return LineErrors(errors, complete)


@dataclass(frozen=True, slots=True)
class Encoded:
    """:func:`~ingest.stores.lineprotocol.encode_batch` of ``points``, made ahead of the write (the
    writer's prepare stage, ``ingest.writing.ahead``, encodes the next batch while the store takes
    this one). Valid for exactly those point objects in that order (:meth:`fits`); anything else
    is encoded afresh. Pure: no connection, no store state."""

    points: tuple[Point, ...]
    ok: tuple[Point, ...]
    lines: tuple[str, ...]
    bad: tuple[tuple[Point, str], ...]

    @classmethod
    def of(cls, points: Sequence[Point]) -> Encoded:
        ok, lines, bad = encode_batch(points)
        return cls(tuple(points), tuple(ok), tuple(lines), tuple(bad))

    def fits(self, points: Sequence[Point]) -> bool:
        """True if ``points`` are the very objects this was encoded from, in the same order."""
        return len(points) == len(self.points) and all(map(operator.is_, points, self.points))


def write_points(points: Sequence[Point], send: SendFn, encoded: Encoded | None = None) -> list[tuple[Point, str]]:
    """Encode ``points`` as line protocol (or take ``encoded``, if made from exactly these points),
    send them in one request, and pin down any refusals: the shared ``write`` of the InfluxDB adapters."""
    if encoded is not None and encoded.fits(points):
        ok: Sequence[Point] = encoded.ok
        lines: Sequence[str] = encoded.lines
        bad = list(encoded.bad)
    else:
        ok, lines, bad = encode_batch(points)
    if lines:
        bad.extend(bisect_rejections(ok, lines, send))
    return bad
