"""Differential property test: the orjson fast path decodes every message exactly as the stdlib path does
(same points, or the same rejection reason), so it is a pure speed-up."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given

from core.model import Rejected
from ingest.decoding.decode import Decoder
from tests.test_decode_fuzz import FUZZ, NOW_NS, WINDOW_S, good_topics, payloads

pytest.importorskip("orjson")
fast = Decoder(future_window_s=WINDOW_S, fast_json=True)
exact = Decoder(future_window_s=WINDOW_S, fast_json=False)


def outcome(dec: Decoder, topic: str, payload: bytes) -> Any:
    try:
        return dec.decode_unguarded(topic, payload, NOW_NS)
    except Rejected as e:
        return ("rejected", e.reason)


@FUZZ
@given(good_topics, payloads)
def test_orjson_path_matches_the_stdlib_path(topic: str, payload: bytes) -> None:
    assert outcome(fast, topic, payload) == outcome(exact, topic, payload)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"ts": 18446744073709551616, "t": 1}',  # beyond 64 bits: orjson would give a float
        b'{"t": 18446744073709551616}',
        b'{"t": -9223372036854775809}',
        b'{"t": 1e400}',
        b'{"t": NaN}',
        b'{"t": "\\ud800"}',
        b'\xef\xbb\xbf{"t": 1}',
        b'[{"n": "a", "v": 18446744073709551616}]',
        b'{"t": 1, "t": 2}',
    ],
)
def test_edge_cases_match(payload: bytes) -> None:
    for kind in ("telemetry", "metrics", "events"):
        topic = f"devices/dev-1/{kind}"
        assert outcome(fast, topic, payload) == outcome(exact, topic, payload), (kind, payload)
