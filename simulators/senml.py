"""SenML (RFC 8428) packs for simulated readings. Pure, no I/O.

The base time ``bt`` is the first sample's whole second and every record carries its offset
``t`` (a fraction of a second, or more for later samples), so a decoder that adds
``round(bt * 1e9) + round(t * 1e9)`` recovers the exact nanosecond timestamp.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from simulators.profiles import Fields

NS = 1_000_000_000


def pack(base_name: str, samples: Sequence[tuple[int, Fields]], units: Mapping[str, str]) -> list[dict[str, Any]]:
    """Records for ``samples`` of (ts_ns, fields), named ``{base_name}{field}``."""
    bt = samples[0][0] // NS
    records: list[dict[str, Any]] = []
    for ts_ns, fields in samples:
        t = (ts_ns - bt * NS) / NS
        for name, value in fields.items():
            rec: dict[str, Any] = {}
            if not records:
                rec = {"bn": base_name, "bt": bt}
            rec["n"] = name
            if units.get(name) and not isinstance(value, bool | str):
                rec["u"] = units[name]
            if isinstance(value, bool):
                rec["vb"] = value
            elif isinstance(value, str):
                rec["vs"] = value
            else:
                rec["v"] = value
            rec["t"] = t
            records.append(rec)
    return records
