"""SenML resolution and grouping: RFC 8428 §5.1 examples exactly, base fields, rejections."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.model import Point, Reason, Rejected
from ingest.decoding.senml import ResolvedRecord, field_name, plain_points, resolve, to_points

NOW = 1_700_000_000.0
NOW_NS = 1_700_000_000_000_000_000
DEV = "10e2073a01080063"
URN = "urn:dev:ow:10e2073a01080063"


def rfc(text: str) -> list[Any]:
    records: list[Any] = json.loads(text)
    return records


def senml(records: list[Any]) -> list[dict[str, Any]]:
    return [r.as_senml() for r in resolve(records, NOW)]


def points(records: list[Any], device: str = DEV) -> list[Point]:
    return to_points(resolve(records, NOW), device, "sensor_readings")


def pt(fields: dict[str, Any], ts_ns: int, unit: str | None = None, device: str = DEV) -> Point:
    return Point("sensor_readings", device, fields, ts_ns, {"unit": unit} if unit else {})


# --- RFC 8428 §5.1.1 Single Data Point ---------------------------------------------------

EX_5_1_1 = '[{"n":"urn:dev:ow:10e2073a01080063","u":"Cel","v":23.1}]'


def test_rfc_5_1_1_single_data_point() -> None:
    assert resolve(rfc(EX_5_1_1), NOW) == [ResolvedRecord(URN, NOW, "Cel", "v", 23.1)]
    assert senml(rfc(EX_5_1_1)) == [{"n": URN, "u": "Cel", "t": NOW, "v": 23.1}]
    # the name is the device itself: the field is "value"
    assert points(rfc(EX_5_1_1)) == [pt({"value": 23.1}, NOW_NS, "Cel")]


# --- RFC 8428 §5.1.2 Multiple Data Points ------------------------------------------------

EX_5_1_2_A = """[
  {"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","u":"V","v":120.1},
  {"n":"current","u":"A","v":1.2}
]"""

EX_5_1_2_B = """[
  {"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,
   "bu":"A","bver":5,
   "n":"voltage","u":"V","v":120.1},
  {"n":"current","t":-5,"v":1.2},
  {"n":"current","t":-4,"v":1.3},
  {"n":"current","t":-3,"v":1.4},
  {"n":"current","t":-2,"v":1.5},
  {"n":"current","t":-1,"v":1.6},
  {"n":"current","v":1.7}
]"""

EX_5_1_2_STREAM = """[
  {"bn":"urn:dev:ow:10e2073a01080063","bt":1.320067464e+09,
   "bu":"%RH","v":21.2},
  {"t":10,"v":21.3},
  {"t":20,"v":21.4},
  {"t":30,"v":21.4},
  {"t":40,"v":21.5},
  {"t":50,"v":21.5},
  {"t":60,"v":21.5},
  {"t":70,"v":21.6},
  {"t":80,"v":21.7}
]"""


def test_rfc_5_1_2_multiple_data_points_now() -> None:
    assert senml(rfc(EX_5_1_2_A)) == [
        {"n": URN + ":voltage", "u": "V", "t": NOW, "v": 120.1},
        {"n": URN + ":current", "u": "A", "t": NOW, "v": 1.2},
    ]
    assert points(rfc(EX_5_1_2_A)) == [
        pt({"voltage": 120.1}, NOW_NS, "V"),
        pt({"current": 1.2}, NOW_NS, "A"),
    ]


def test_rfc_5_1_2_base_time_unit_version_and_chronological_order() -> None:
    bt = 1.276020076001e09
    n = "urn:dev:ow:10e2073a0108006:"
    resolved = senml(rfc(EX_5_1_2_B))
    # resolved records are in chronological order (§4.6); stable for equal times
    assert resolved == [
        {"n": n + "current", "u": "A", "t": bt - 5, "v": 1.2},
        {"n": n + "current", "u": "A", "t": bt - 4, "v": 1.3},
        {"n": n + "current", "u": "A", "t": bt - 3, "v": 1.4},
        {"n": n + "current", "u": "A", "t": bt - 2, "v": 1.5},
        {"n": n + "current", "u": "A", "t": bt - 1, "v": 1.6},
        {"n": n + "voltage", "u": "V", "t": bt, "v": 120.1},
        {"n": n + "current", "u": "A", "t": bt, "v": 1.7},
    ]
    dev = "10e2073a0108006"
    assert points(rfc(EX_5_1_2_B), dev) == [
        pt({"current": 1.2}, 1_276_020_071_001_000_000, "A", dev),
        pt({"current": 1.3}, 1_276_020_072_001_000_000, "A", dev),
        pt({"current": 1.4}, 1_276_020_073_001_000_000, "A", dev),
        pt({"current": 1.5}, 1_276_020_074_001_000_000, "A", dev),
        pt({"current": 1.6}, 1_276_020_075_001_000_000, "A", dev),
        pt({"voltage": 120.1}, 1_276_020_076_001_000_000, "V", dev),
        pt({"current": 1.7}, 1_276_020_076_001_000_000, "A", dev),
    ]


def test_rfc_5_1_2_another_devices_names_are_kept_whole() -> None:
    # the example's URN lacks the final "3": it is not device 10e2073a01080063's name
    got = points(rfc(EX_5_1_2_B), DEV)
    assert {f for p in got for f in p.fields} == {
        "urn:dev:ow:10e2073a0108006:current",
        "urn:dev:ow:10e2073a0108006:voltage",
    }


def test_rfc_5_1_2_sensml_stream() -> None:
    bt = 1.320067464e09
    values = [21.2, 21.3, 21.4, 21.4, 21.5, 21.5, 21.5, 21.6, 21.7]
    assert senml(rfc(EX_5_1_2_STREAM)) == [
        {"n": URN, "u": "%RH", "t": bt + 10 * i, "v": v} for i, v in enumerate(values)
    ]
    assert points(rfc(EX_5_1_2_STREAM)) == [
        pt({"value": v}, 1_320_067_464_000_000_000 + i * 10_000_000_000, "%RH") for i, v in enumerate(values)
    ]


# --- RFC 8428 §5.1.3 Multiple Measurements and §5.1.4 Resolved Data ----------------------

EX_5_1_3 = """[
  {"bn":"urn:dev:ow:10e2073a01080063","bt":1.320067464e+09,
   "bu":"%RH","v":20},
  {"u":"lon","v":24.30621},
  {"u":"lat","v":60.07965},
  {"t":60,"v":20.3},
  {"u":"lon","t":60,"v":24.30622},
  {"u":"lat","t":60,"v":60.07965},
  {"t":120,"v":20.7},
  {"u":"lon","t":120,"v":24.30623},
  {"u":"lat","t":120,"v":60.07966},
  {"u":"%EL","t":150,"v":98},
  {"t":180,"v":21.2},
  {"u":"lon","t":180,"v":24.30628},
  {"u":"lat","t":180,"v":60.07967}
]"""

EX_5_1_4 = """[
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067464e+09,
   "v":20},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067464e+09,
   "v":24.30621},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067464e+09,
   "v":60.07965},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067524e+09,
   "v":20.3},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067524e+09,
   "v":24.30622},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067524e+09,
   "v":60.07965},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067584e+09,
   "v":20.7},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067584e+09,
   "v":24.30623},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067584e+09,
   "v":60.07966},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%EL","t":1.320067614e+09,
   "v":98},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067644e+09,
   "v":21.2},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067644e+09,
   "v":24.30628},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067644e+09,
   "v":60.07967}
]"""


def test_rfc_5_1_3_resolves_to_5_1_4_exactly() -> None:
    assert senml(rfc(EX_5_1_3)) == rfc(EX_5_1_4)


def test_rfc_5_1_4_resolved_data_is_a_fixed_point() -> None:
    assert senml(rfc(EX_5_1_4)) == rfc(EX_5_1_4)


def test_rfc_5_1_3_points_one_per_time_and_unit() -> None:
    expected = [pt({"value": r["v"]}, round(r["t"]) * 1_000_000_000, r["u"]) for r in rfc(EX_5_1_4)]
    assert points(rfc(EX_5_1_3)) == expected
    assert len(expected) == 13


# --- RFC 8428 §5.1.5 Multiple Data Types -------------------------------------------------

EX_5_1_5 = """[
  {"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","u":"Cel","v":23.1},
  {"n":"label","vs":"Machine Room"},
  {"n":"open","vb":false},
  {"n":"nfv-reader","vd":"aGkgCg"}
]"""


def test_rfc_5_1_5_multiple_data_types() -> None:
    assert senml(rfc(EX_5_1_5)) == [
        {"n": URN + ":temp", "u": "Cel", "t": NOW, "v": 23.1},
        {"n": URN + ":label", "t": NOW, "vs": "Machine Room"},
        {"n": URN + ":open", "t": NOW, "vb": False},
        {"n": URN + ":nfv-reader", "t": NOW, "vd": "aGkgCg"},
    ]
    assert points(rfc(EX_5_1_5)) == [
        pt({"temp": 23.1}, NOW_NS, "Cel"),
        pt({"label": "Machine Room", "open": False, "nfv-reader": "aGkgCg"}, NOW_NS),
    ]


# --- RFC 8428 §5.1.6 Collection of Resources ---------------------------------------------

EX_5_1_6 = """[
  {"bn":"2001:db8::2/","bt":1.320078429e+09,
   "n":"temperature","u":"Cel","v":25.2},
  {"n":"humidity","u":"%RH","v":30},
  {"bn":"2001:db8::1/","n":"temperature","u":"Cel","v":12.3},
  {"n":"humidity","u":"%RH","v":67}
]"""


def test_rfc_5_1_6_collection_of_resources() -> None:
    t = 1.320078429e09
    assert senml(rfc(EX_5_1_6)) == [
        {"n": "2001:db8::2/temperature", "u": "Cel", "t": t, "v": 25.2},
        {"n": "2001:db8::2/humidity", "u": "%RH", "t": t, "v": 30},
        {"n": "2001:db8::1/temperature", "u": "Cel", "t": t, "v": 12.3},
        {"n": "2001:db8::1/humidity", "u": "%RH", "t": t, "v": 67},
    ]
    ts = 1_320_078_429_000_000_000
    # sent by a gateway: names of other devices stay whole, so nothing collides
    assert points(rfc(EX_5_1_6), "gw1") == [
        pt({"2001:db8::2/temperature": 25.2, "2001:db8::1/temperature": 12.3}, ts, "Cel", "gw1"),
        pt({"2001:db8::2/humidity": 30.0, "2001:db8::1/humidity": 67.0}, ts, "%RH", "gw1"),
    ]
    # sent by 2001:db8::2 itself: its own prefix is cut
    dev = "2001:db8::2"
    assert points(rfc(EX_5_1_6), dev) == [
        pt({"temperature": 25.2, "2001:db8::1/temperature": 12.3}, ts, "Cel", dev),
        pt({"humidity": 30.0, "2001:db8::1/humidity": 67.0}, ts, "%RH", dev),
    ]


def test_rfc_5_1_7_record_of_base_fields_only_yields_nothing() -> None:
    pack = rfc("""[
      {"bn":"urn:dev:ow:10e2073a01080063:"},
      {"n":"temp","u":"Cel","v":23.1},
      {"n":"heat","u":"/","v":1},
      {"n":"fan","u":"/","v":0}
    ]""")
    assert points(pack) == [
        pt({"temp": 23.1}, NOW_NS, "Cel"),
        pt({"heat": 1.0, "fan": 0.0}, NOW_NS, "/"),
    ]


# --- base fields, relative time, sums, grouping ------------------------------------------


def test_base_value_and_base_sum_are_added_and_carried() -> None:
    pack = [
        {"bn": "d1/", "bv": 100, "bs": 50, "n": "a", "v": 1.5, "s": 10},
        {"n": "b", "v": -1},
        {"n": "c", "s": 5},
        {"n": "d", "vs": "x"},
    ]
    assert senml(pack) == [
        {"n": "d1/a", "t": NOW, "v": 101.5, "s": 60.0},
        {"n": "d1/b", "t": NOW, "v": 99.0, "s": 50.0},
        {"n": "d1/c", "t": NOW, "s": 55.0},
        {"n": "d1/d", "t": NOW, "vs": "x", "s": 50.0},
    ]
    assert points(pack, "d1") == [
        pt(
            {"a": 101.5, "a_sum": 60.0, "b": 99.0, "b_sum": 50.0, "c_sum": 55.0} | {"d": "x", "d_sum": 50.0},
            NOW_NS,
            device="d1",
        )
    ]


def test_base_fields_are_replaced_by_later_records() -> None:
    pack = [
        {"bn": "a/", "bu": "V", "bt": 1_600_000_000, "n": "x", "v": 1},
        {"bn": "b/", "n": "x", "v": 2},
        {"bu": "A", "n": "y", "v": 3, "t": 1},
        {"n": "z", "u": "W", "v": 4, "t": 1},
    ]
    assert senml(pack) == [
        {"n": "a/x", "u": "V", "t": 1.6e9, "v": 1.0},
        {"n": "b/x", "u": "V", "t": 1.6e9, "v": 2.0},
        {"n": "b/y", "u": "A", "t": 1.6e9 + 1, "v": 3.0},
        {"n": "b/z", "u": "W", "t": 1.6e9 + 1, "v": 4.0},
    ]


@pytest.mark.parametrize(
    ("record", "expected_t"),
    [
        ({"n": "x", "v": 1}, NOW),
        ({"n": "x", "v": 1, "t": -60}, NOW - 60),
        ({"n": "x", "v": 1, "t": 30}, NOW + 30),
        ({"bt": -100, "n": "x", "v": 1, "t": 40}, NOW - 60),
        ({"bt": 2**28 - 1, "n": "x", "v": 1}, NOW + 2**28 - 1),
        ({"bt": 2**28, "n": "x", "v": 1}, float(2**28)),
        ({"bt": 2**28 - 10, "n": "x", "v": 1, "t": 10}, float(2**28)),
        ({"n": "x", "v": 1, "t": 1.5e9}, 1.5e9),
    ],
)
def test_times_below_2_28_are_relative_to_now(record: dict[str, Any], expected_t: float) -> None:
    assert resolve([record], NOW)[0].time == expected_t


def test_sub_second_times_round_to_microseconds() -> None:
    got = points([{"n": "x", "v": 1, "t": 1.6e9 + 0.1234567}], "d")
    assert got[0].ts_ns == 1_600_000_000_123_457_000


def test_pack_of_ten_same_time_and_unit_is_one_point() -> None:
    pack = [{"bn": "d7/", "bt": 1.7e9, "bu": "Cel", "n": "s0", "v": 0}] + [{"n": f"s{i}", "v": i} for i in range(1, 10)]
    got = points(pack, "d7")
    assert got == [pt({f"s{i}": float(i) for i in range(10)}, 1_700_000_000 * 10**9, "Cel", "d7")]


def test_records_without_unit_share_a_point_without_unit_tag() -> None:
    got = points([{"n": "a", "v": 1}, {"n": "b", "vb": True}, {"n": "c", "u": "", "v": 2}], "d")
    assert got == [pt({"a": 1.0, "b": True, "c": 2.0}, NOW_NS, device="d")]


def test_same_field_twice_in_one_point_keeps_the_last() -> None:
    assert points([{"n": "a", "v": 1}, {"n": "a", "v": 2}], "d") == [pt({"a": 2.0}, NOW_NS, device="d")]


def test_unknown_labels_are_ignored_and_update_time_is_kept() -> None:
    assert senml([{"n": "a", "v": 1, "foo": {"x": 1}, "ut": 30}]) == [{"n": "a", "t": NOW, "v": 1.0, "ut": 30.0}]


def test_bver_up_to_10_is_accepted_and_must_be_constant() -> None:
    assert len(resolve([{"bver": 10, "n": "a", "v": 1}, {"bver": 10, "n": "b", "v": 1}], NOW)) == 2
    assert len(resolve([{"bver": 5, "n": "a", "v": 1}, {"n": "b", "v": 1}], NOW)) == 2


@pytest.mark.parametrize(
    ("name", "device", "field"),
    [
        ("temperature", "d1", "temperature"),
        ("d1", "d1", "value"),
        ("d1/temp", "d1", "temp"),
        ("d1:temp", "d1", "temp"),
        ("d1/door/open", "d1", "door/open"),
        ("d1/", "d1", "value"),
        ("d1.temp", "d1", "d1.temp"),
        ("d10/temp", "d1", "d10/temp"),
        ("urn:dev:ow:d1:temp", "d1", "temp"),
        ("urn:dev:ow:d1", "d1", "value"),
        ("urn:dev:ow:d10:temp", "d1", "urn:dev:ow:d10:temp"),
        ("urn:dev:mac:0024befffe804ff1:x", "0024befffe804ff1", "x"),
        ("urn:dev:ow:d1:temp", "urn:dev:ow:d1", "temp"),
        ("other/temp", "d1", "other/temp"),
    ],
)
def test_field_name_rule(name: str, device: str, field: str) -> None:
    assert field_name(name, device) == field


# --- rejections ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pack", "detail"),
    [
        ({"n": "a", "v": 1}, "JSON array"),
        ([1], "not a JSON object"),
        ([{"n": "a"}], "no value"),
        ([{"n": "a", "u": "V"}], "no value"),
        ([{"n": "a", "v": "1"}], "v must be a number"),
        ([{"n": "a", "v": True}], "v must be a number"),
        ([{"n": "a", "v": None}], "v must be a number"),
        ([{"n": "a", "v": 10**400}], "out of range"),
        ([{"n": "a", "v": 1, "vs": "1"}], "more than one value"),
        ([{"n": "a", "vb": 1}], "vb must be"),
        ([{"n": "a", "vs": 1}], "vs must be a string"),
        ([{"n": "a", "vd": "a*b="}], "base64url"),
        ([{"n": "a", "vd": "abcde"}], "base64url"),
        ([{"n": "a", "vd": "ab+/"}], "base64url"),
        ([{"n": "a", "vd": "ab="}], "base64url"),
        ([{"n": "a", "v": 1, "foo_": 1}], "must-understand"),
        ([{"n": "a", "v": 1, "bver": 11}], "not supported"),
        ([{"n": "a", "v": 1, "bver": "10"}], "positive integer"),
        ([{"n": "a", "v": 1, "bver": 0}], "positive integer"),
        ([{"n": "a", "v": 1, "bver": 5}, {"n": "b", "v": 1, "bver": 10}], "differs"),
        ([{"n": "a", "v": 1}, {"n": "b", "v": 1, "bver": 5}], "differs"),
        ([{"bn": 5, "n": "a", "v": 1}], "bn must be a string"),
        ([{"bt": "now", "n": "a", "v": 1}], "bt must be a number"),
        ([{"n": "a", "v": 1, "t": "0"}], "t must be a number"),
        ([{"n": "a", "u": 1, "v": 1}], "u must be a string"),
        ([{"v": 1}], "no name"),
        ([{"n": "a", "v": 1e308, "bv": 1e308}], "not finite"),
        ([{"n": "a", "s": 1e308, "bs": 1e308}], "not finite"),
        ([{"bt": 1e308, "n": "a", "v": 1, "t": 1e308}], "time out of range"),
    ],
)
def test_resolve_rejects(pack: object, detail: str) -> None:
    with pytest.raises(Rejected) as e:
        resolve(pack, NOW)
    assert e.value.reason is Reason.INVALID_SENML
    assert detail in e.value.detail


@pytest.mark.parametrize(
    ("pack", "detail"),
    [
        ([{"n": "bad name", "v": 1}], "not a valid SenML name"),
        ([{"n": "-x", "v": 1}], "not a valid SenML name"),
        ([{"n": "a", "v": 1}, {"n": "a", "vs": "x", "t": 1}], "carries both"),
        ([{"n": "a_sum", "vs": "x"}, {"n": "a", "s": 1}], "carries both"),
    ],
)
def test_to_points_rejects(pack: list[Any], detail: str) -> None:
    with pytest.raises(Rejected) as e:
        points(pack, "d")
    assert e.value.reason is Reason.INVALID_SENML
    assert detail in e.value.detail


@pytest.mark.parametrize(
    ("pack", "reason", "detail"),
    [
        ([{"n": "time", "v": 1}], Reason.RESERVED_NAME, "reserved"),
        ([{"n": "d/unit", "vs": "x"}], Reason.RESERVED_NAME, "reserved"),
        ([{"n": "a", "u": "V\n", "v": 1}], Reason.INVALID_NAME, "cannot be a tag"),
        ([{"n": "a", "u": "a\\ b\\,c\\,d", "vs": "x"}], Reason.INVALID_NAME, "cannot be a tag"),
        ([{"n": "a" * 126, "s": 1}], Reason.INVALID_NAME, "must be 1-128"),
    ],
)
def test_to_points_refuses_names(pack: list[Any], reason: Reason, detail: str) -> None:
    with pytest.raises(Rejected) as e:
        points(pack, "d")
    assert e.value.reason is reason
    assert detail in e.value.detail


def test_resolved_time_before_1970_is_a_bad_timestamp() -> None:
    with pytest.raises(Rejected) as e:
        points([{"n": "a", "v": 1, "t": -NOW - 10}], "d")
    assert e.value.reason is Reason.BAD_TIMESTAMP


# -- the fast path for common pack shapes (ingest.decoding.senml.plain_points) --------------------------------
_name = st.sampled_from(["r0", "r1", "temp", "dev7", "x/y", "r0", "r1", "temp", "r2", "", "a b", "device_id", 5])
_finite = st.one_of(
    st.sampled_from([-0.0, 0.0, 20.5, 21, -1.25, 2**28 - 1, 2**28, 1e308, 2**60]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**60), max_value=2**60),
)
_number = st.one_of(_finite, st.sampled_from([20.5, 21, 3.25, 21, 2**1100, float("nan"), float("inf"), True]))
_value = st.one_of(_number, st.text(max_size=3), st.none(), st.booleans())
_record_keys = st.sampled_from(["n", "v", "t", "u"])
_unit = st.sampled_from(["Cel", "%RH", "Cel", "%RH", "", "bad unit", 7, None])


@st.composite
def _packs(draw: st.DrawFn) -> list[Any]:
    """Packs mostly of the shapes the fast path takes, with enough deviations to hit every exit."""
    n = draw(st.integers(min_value=1, max_value=6))
    uniform = draw(st.booleans())
    pack: list[Any] = []
    for i in range(n):
        rec: dict[str, Any] = {}
        if i == 0:
            if draw(st.booleans()):
                rec["bn"] = draw(st.sampled_from(["dev7:", "urn:dev:ow:dev7:", "", "other-", "dev7:", "dev7/", 5]))
            if draw(st.booleans()):
                rec["bu"] = draw(_unit)
            if draw(st.booleans()):
                rec["bt"] = draw(st.sampled_from([1.7e9, 1_700_000_000, 0, 1.7e9, 1.5e9, -5.0, 1e300, 2**1100, True]))
        some = st.lists(_record_keys, unique=True, max_size=4)
        keys = (
            ["n", "v"] if uniform and i else draw(st.one_of(some, st.just(["n", "v"]), st.just(["n", "v", "t", "u"])))
        )
        for k in keys:
            if k == "n":
                rec["n"] = draw(_name)
            elif k == "v":
                rec["v"] = draw(_value if i == 3 else _number)
            elif k == "t":
                rec["t"] = draw(st.sampled_from([0, 1, 2, -1, 1.5, 1.7e9, 0, 1, 2, 1e300, None, "1"]))
            else:
                rec["u"] = draw(_unit)
        if draw(st.integers(min_value=0, max_value=19)) == 0:
            rec[draw(st.sampled_from(["vs", "s", "bu", "x", "bver"]))] = draw(_value)
        pack.append(rec)
    return pack


@settings(max_examples=3000, deadline=None)
@given(pack=_packs(), now=st.sampled_from([1_700_000_000.0, 1_700_000_000.123456]))
def test_fast_path_gives_the_general_paths_points_or_steps_aside(pack: list[Any], now: float) -> None:
    fast = plain_points(json.loads(json.dumps(pack)), now, "dev7", "sensor_readings")
    try:
        slow = to_points(resolve(json.loads(json.dumps(pack)), now), "dev7", "sensor_readings")
    except Rejected:
        assert fast is None  # the general path names the error
        return
    if fast is not None:
        assert fast == slow
        assert [list(p.fields) for p in fast] == [list(p.fields) for p in slow]  # same field order
        assert all(
            type(v) is type(w)
            for p, q in zip(fast, slow, strict=True)
            for v, w in zip(p.fields.values(), q.fields.values(), strict=True)
        )
        assert all(
            str(v) == str(w)
            for p, q in zip(fast, slow, strict=True)
            for v, w in zip(p.fields.values(), q.fields.values(), strict=True)
        )  # -0.0


def test_fast_path_takes_the_common_shapes() -> None:
    """Not just stepping aside: a pack of ten, a time series with units, a base unit give points."""
    ten = [{"bn": "dev7:", "bt": 1.7e9, "n": "r0", "v": 20.5}] + [{"n": f"r{k}", "v": 20 + k} for k in range(1, 10)]
    series = [
        {"bn": "dev7:", "n": "t", "u": "Cel", "v": 20.5, "t": 1.7e9},
        {"n": "t", "u": "Cel", "v": 21, "t": 1.7e9 + 1},
    ]
    based = [{"bn": "dev7/", "bt": 1.7e9, "bu": "Cel", "n": "t0", "v": 20.0}] + [
        {"n": f"t{k}", "v": 20} for k in (1, 2)
    ]
    for pack in (ten, series, based):
        fast = plain_points(pack, 1.7e9, "dev7", "sensor_readings")
        assert fast is not None and fast == to_points(resolve(pack, 1.7e9), "dev7", "sensor_readings")
