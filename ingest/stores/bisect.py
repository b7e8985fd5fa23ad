"""Find exactly the points a server refused when it only says "some lines were bad".

InfluxDB answers a partial write with one error for the whole request and stores the good
points. Writes are idempotent, so re-sending halves is safe: bisect until each refusal is
pinned to a single point. ``k`` bad points in ``n`` cost about ``2·k·log2(n)`` extra requests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from core.model import Point
from ingest.stores.lineprotocol import encode_batch

T = TypeVar("T")


def bisect_rejections(
    items: Sequence[T], lines: Sequence[str], send: Callable[[Sequence[str]], str | None]
) -> list[tuple[T, str]]:
    """``send(lines)`` returns None when all were stored, else the server's reason (and may
    raise StoreUnavailable, which propagates). Returns [(item, reason)] for refused items."""
    reason = send(lines)
    if reason is None:
        return []
    return _split(items, lines, send, reason)


def _split(
    items: Sequence[T],
    lines: Sequence[str],
    send: Callable[[Sequence[str]], str | None],
    reason: str,
) -> list[tuple[T, str]]:
    if len(items) == 1:
        return [(items[0], reason)]
    mid = len(items) // 2
    out: list[tuple[T, str]] = []
    for lo, hi in ((0, mid), (mid, len(items))):
        r = send(lines[lo:hi])
        if r is not None:
            out.extend(_split(items[lo:hi], lines[lo:hi], send, r))
    return out


def write_points(points: Sequence[Point], send: Callable[[Sequence[str]], str | None]) -> list[tuple[Point, str]]:
    """Encode ``points`` as line protocol, send them in one request, and pin down any refusals:
    the shared ``write`` of the InfluxDB adapters."""
    ok, lines, bad = encode_batch(points)
    if lines:
        bad.extend(bisect_rejections(ok, lines, send))
    return bad
