"""Retention of time-series data: the small interface every store implements, and pure helpers.

A store that keeps data for a limited time implements :class:`Retention`:
``retention()`` → how long (seconds; ``None`` = forever) and where it is configured,
``set_retention(seconds | None)``. InfluxDB 1.x: the database's default retention policy
(``ALTER RETENTION POLICY … DURATION``); InfluxDB 2.x: the bucket's expiry rule (buckets API);
embedded: a setting in its SQLite file, enforced by pruning on write (every ``PRUNE_EVERY_S``)
and at once when set. Defaults: forever on every backend until set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_GO = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
MIN_RETENTION_S = 3600  # InfluxDB refuses less than an hour


@dataclass(frozen=True)
class RetentionInfo:
    seconds: int | None  # None: kept forever
    where: str  # e.g. 'retention policy "autogen" on db iot', 'bucket iot', 'embedded store'

    def as_dict(self) -> dict[str, object]:
        return {"retention_s": self.seconds, "retention": human(self.seconds), "where": self.where}


@runtime_checkable
class Retention(Protocol):
    def retention(self) -> RetentionInfo: ...

    def set_retention(self, seconds: int | None) -> RetentionInfo: ...


@dataclass(frozen=True)
class DownsampleInfo:
    every_s: int | None  # None: off
    targets: tuple[str, ...]  # where the means go (measurements, or rp.measurement)
    where: str

    def as_dict(self) -> dict[str, object]:
        return {"every_s": self.every_s, "every": human(self.every_s) if self.every_s else "off",
                "targets": list(self.targets), "where": self.where}  # fmt: skip


@runtime_checkable
class Downsampling(Protocol):
    """Means of numeric fields per ``every_s`` bucket, kept apart from raw data (and its retention)."""

    def downsampling(self) -> DownsampleInfo: ...

    def set_downsampling(self, every_s: int | None) -> DownsampleInfo: ...


def parse_every(text: str) -> int | None:
    """``1m``, ``5m``, ``1h``; ``off`` → None. At least 10 s, at most 1 d."""
    t = text.strip().lower()
    if t in ("off", "none", "0"):
        return None
    m = re.fullmatch(r"(\d+)([smhd])", t)
    if not m:
        raise ValueError(f"invalid interval {text!r}: use e.g. 1m, 5m, 1h or off")
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if not 10 <= seconds <= 86400:
        raise ValueError(f"interval {text!r} must be between 10s and 1d")
    return seconds


def parse_retention(text: str) -> int | None:
    """``90d``, ``12w``, ``1y``, ``36h``; ``inf``/``forever``/``0`` → None. ValueError otherwise."""
    t = text.strip().lower()
    if t in ("inf", "infinite", "forever", "0", "none"):
        return None
    m = re.fullmatch(r"(\d+)([smhdwy])", t)
    if not m:
        raise ValueError(f"invalid retention {text!r}: use e.g. 36h, 90d, 12w, 1y or inf")
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if seconds < MIN_RETENTION_S:
        raise ValueError(f"retention {text!r} is under the 1h minimum")
    return seconds


def human(seconds: int | None) -> str:
    if seconds is None:
        return "forever"
    for unit, n in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % n == 0:
            return f"{seconds // n}{unit}"
    return f"{seconds}s"


def parse_go_duration(text: str) -> int | None:
    """InfluxDB 1.x durations (``2160h0m0s``, ``0s`` = infinite) → seconds or None."""
    total = sum(float(n) * _GO_S[u] for n, u in _GO.findall(text))
    return None if total == 0 else int(total)


def shard_duration_s(retention_s: int | None) -> int:
    """InfluxDB's own defaults: 1h under 2 days, 1d up to 6 months, else 7d."""
    if retention_s is None or retention_s > 183 * 86400:
        return 7 * 86400
    return 3600 if retention_s < 2 * 86400 else 86400
