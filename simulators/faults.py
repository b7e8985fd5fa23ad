"""Deliberately malformed payloads, each carrying a findable id. Pure, no I/O.

Every payload embeds its id (``mf-<seed>-<device>-<n>``) as ASCII somewhere in its raw bytes, so
a test can find it among the dead letters — except ``no_fields``, whose whole point is that the
object holds nothing but a timestamp.
"""

from __future__ import annotations

import json
import random

OVERSIZE_BYTES = 256 * 1024 + 1024
FUTURE_MS = 10 * 365 * 86400 * 1000

MALFORMATIONS: tuple[str, ...] = (
    "invalid_json",
    "invalid_utf8",
    "non_finite",
    "wrong_type",
    "no_fields",
    "oversize",
    "future_timestamp",
    "bad_timestamp",
    "unknown_kind",
    "invalid_senml",
    "document_not_object",
)
ID_FREE = frozenset({"no_fields"})
"""Malformations whose payload cannot carry the id."""


def malformed(why: str, mf_id: str, topic_prefix: str, ts_ms: int, rng: random.Random) -> tuple[str, str, bytes]:
    """(topic kind, topic, payload) for one malformed message of kind ``why``.

    ``topic_prefix`` is ``{root}/{device_id}``; ``ts_ms`` the slot's simulated time.
    """
    kind = rng.choice(("telemetry", "metrics"))
    dumps = json.dumps
    payload: bytes
    if why == "invalid_json":
        payload = rng.choice(
            (
                f'{{"ts": {ts_ms}, "temperature": 21.5, "note": "{mf_id}"',
                f'{{ts: {ts_ms}, "note": "{mf_id}"}}',
                f'{{"ts": {ts_ms}, "note": "{mf_id}",}}',
                f"{mf_id}",
            )
        ).encode()
    elif why == "invalid_utf8":
        payload = f'{{"ts": {ts_ms}, "note": "{mf_id}", "bad": "'.encode() + b'\xff\xfe\xc3"}'
    elif why == "non_finite":
        literal = rng.choice(("NaN", "Infinity", "-Infinity", "1e999"))
        payload = f'{{"ts": {ts_ms}, "value": {literal}, "note": "{mf_id}"}}'.encode()
    elif why == "wrong_type":
        payload = rng.choice(
            (
                dumps({"ts": ts_ms, "value": {"nested": 1.0, "note": mf_id}}),
                dumps({"ts": ts_ms, "value": [1.0, 2.0], "note": mf_id}),
                dumps(mf_id),
            )
        ).encode()
    elif why == "no_fields":
        payload = rng.choice((dumps({"ts": ts_ms}), "{}")).encode()
    elif why == "oversize":
        kind = rng.choice(("telemetry", "config"))
        blob = mf_id + " " + "x" * (OVERSIZE_BYTES - len(mf_id))
        payload = dumps({"ts": ts_ms, "blob": blob}).encode()
    elif why == "future_timestamp":
        payload = dumps({"ts": ts_ms + FUTURE_MS, "value": 1.0, "note": mf_id}).encode()
    elif why == "bad_timestamp":
        payload = rng.choice(
            (
                dumps({"ts": f"yesterday {mf_id}", "value": 1.0}),
                dumps({"ts": [ts_ms], "value": 1.0, "note": mf_id}),
            )
        ).encode()
    elif why == "unknown_kind":
        kind = "diagnostics"
        payload = dumps({"ts": ts_ms, "value": 1.0, "note": mf_id}).encode()
    elif why == "invalid_senml":
        base = topic_prefix.rsplit("/", 1)[-1] + ":"
        payload = rng.choice(
            (
                dumps([{"bn": base, "bt": ts_ms / 1000, "n": "value", "v": mf_id}]),
                dumps([{"bn": base, "bt": mf_id, "n": "value", "v": 1.0}]),
                dumps([mf_id, 1.0]),
            )
        ).encode()
        kind = "telemetry"
    elif why == "document_not_object":
        kind = rng.choice(("config", "firmware", "maintenance"))
        payload = dumps([mf_id, {"version": "1.0.0"}]).encode()
    else:
        raise ValueError(f"unknown malformation {why!r}")
    return kind, f"{topic_prefix}/{kind}", payload
