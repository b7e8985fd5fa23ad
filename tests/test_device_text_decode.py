"""Decode time: a device string holding a C1 control, a line/paragraph separator or a bidi control is
refused (a dead letter whose detail names the field), in every place a device string can be stored."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.devicetext import UNSAFE, for_terminal, one_line, unsafe
from core.model import Reason, Rejected
from ingest.decoding.decode import Decoder

NOW_NS = 1_764_038_400_000_000_000
dec = Decoder()

# C1 (CSI, NEL, the ends), line/paragraph separators, every bidi control the rule names
HOSTILE = ["\x80", "\x85", "\x9b", "\x9f", "\u2028", "\u2029", "\u061c", "\u200e", "\u200f"]
HOSTILE += [chr(c) for c in range(0x202A, 0x202F)] + [chr(c) for c in range(0x2066, 0x206A)]

T, M, E = "devices/d1/telemetry", "devices/d1/metrics", "devices/d1/events"


def _payloads(s: str) -> list[tuple[str, str, object, Reason, str]]:
    """(label, topic, payload, expected reason, a word the detail names) per field kind."""
    return [
        ("event message", E, {"level": "error", "message": f"pump {s}failed"}, Reason.WRONG_TYPE, "message"),
        ("event code", E, {"level": "error", "code": f"E{s}42"}, Reason.WRONG_TYPE, "code"),
        ("event string field", E, {"level": "info", "where": f"hall{s}"}, Reason.WRONG_TYPE, "where"),
        ("telemetry string field", T, {"t": 1.0, "state": f"ok{s}"}, Reason.WRONG_TYPE, "state"),
        ("metrics string field", M, {"fw": f"{s}1.2"}, Reason.WRONG_TYPE, "fw"),
        ("SenML vs", T, [{"n": "state", "vs": f"ok{s}"}], Reason.INVALID_SENML, "vs"),
        ("SenML unit", T, [{"n": "t", "u": f"C{s}", "v": 1}], Reason.INVALID_NAME, "unit"),
        ("SenML base unit", T, [{"bu": f"C{s}", "n": "t", "v": 1}], Reason.INVALID_NAME, "unit"),
        ("SenML name", T, [{"n": f"t{s}", "v": 1}], Reason.INVALID_SENML, "name"),
    ]


CASES = [
    pytest.param(topic, payload, reason, word, id=f"{label}-U+{ord(s):04X}")
    for s in HOSTILE
    for label, topic, payload, reason, word in _payloads(s)
]


@pytest.mark.parametrize(("topic", "payload", "reason", "word"), CASES)
def test_hostile_character_is_refused_with_a_clear_reason(
    topic: str, payload: object, reason: Reason, word: str
) -> None:
    with pytest.raises(Rejected) as e:
        dec.decode(topic, json.dumps(payload).encode(), NOW_NS)
    assert e.value.reason is reason
    assert word in e.value.detail


@pytest.mark.parametrize("text", ["21,5 °C", "Füllstand µ", "tab\there", "👩‍🔧 ok", "שלום", "\u00a0nbsp"])
def test_printable_text_in_any_script_is_kept(text: str) -> None:
    got = dec.decode(E, json.dumps({"level": "info", "message": text, "x": text}).encode(), NOW_NS)
    assert isinstance(got, list) and got[0].fields["message"] == text and got[0].fields["x"] == text
    got = dec.decode(T, json.dumps([{"n": "s", "vs": text}]).encode(), NOW_NS)
    assert isinstance(got, list) and got[0].fields["s"] == text


@given(st.text(max_size=40))
def test_accepted_strings_hold_nothing_unsafe(text: str) -> None:
    """Whatever the decoder keeps is free of UNSAFE; whatever it refuses for that held some."""
    try:
        got = dec.decode(E, json.dumps({"level": "info", "message": text}).encode(), NOW_NS)
    except Rejected as e:
        assert unsafe(text) or e.reason is Reason.INVALID_UTF8
        return
    assert isinstance(got, list) and not UNSAFE.search(str(got[0].fields["message"]))


@given(st.text(max_size=40))
def test_neutralised_text_holds_no_line_break_nor_escape(text: str) -> None:
    assert len(one_line(text).splitlines()) <= 1 and not unsafe(one_line(text).replace("\t", " "))
    shown = for_terminal(text)
    assert shown.isprintable() and "\x1b" not in shown
