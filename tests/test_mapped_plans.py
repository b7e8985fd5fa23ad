"""The fast paths of mapped readings held to their reference paths (property tests):

- a flattened JSON reading of a known shape is read by a compiled plan (ingest.decoding.shapes):
  it must give exactly the points (or the refusal) the reference walk gives, for any object;
- a local time ``YYYY-MM-DDTHH:MM:SS`` is read from a cached hour start (and, read again, from the
  cache of times read): it must give exactly the instant ``datetime.fromisoformat`` in the zone
  gives, across DST transitions of odd zones.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.model import DeclaredUnits, FieldValue, Kind, Point, Reason, Rejected
from ingest.decoding.codecs import Source
from ingest.decoding.mapped import JsonReadings, TimeSpec, no_units, points_of, units_by_name
from ingest.decoding.presets import tasmota, zigbee2mqtt
from ingest.decoding.shapes import MAX_DEPTH, Plan, shape_of

NOW_NS = 1_764_038_400_000_000_000
LATEST_NS = NOW_NS + 300 * 10**9
SOURCE = Source("plug1", Kind.TELEMETRY, "sensor_readings", max_fields=12, max_units=4)

KEYS = st.sampled_from(
    [
        *("Power", "Total", "Temperature", "Pressure", "ENERGY", "AM2301", "time", "unit", "bad key", "a.b"),
        *("TempUnit", "PressureUnit", "Time", "update", "battery", "linkquality", "x"),
    ]
)
LEAVES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.sampled_from(["C", "F", "hPa", "mmHg", "bad unit!", "ON", ""]),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
OBJECTS = st.recursive(LEAVES, lambda inner: st.dictionaries(KEYS, inner, max_size=6), max_leaves=20).filter(
    lambda x: type(x) is dict
)


def readers() -> list[JsonReadings]:
    time = TimeSpec(("Time",), "local", "Europe/Berlin")
    return [
        JsonReadings(time=time, unit_of=tasmota.unit_of, unit_context=tasmota.UNIT_CONTEXT),
        JsonReadings(unit_of=zigbee2mqtt.unit_of, skip=frozenset({"update"}), bools=True),
        JsonReadings(separator="_", unit_of=units_by_name({"Power": "W", "ENERGY_Total": "kWh"})),
    ]


def reference(reader: JsonReadings, obj: dict[str, Any], source: Source = SOURCE) -> list[Point] | tuple[Reason, str]:
    try:
        ts = reader.time.ns(obj, NOW_NS, LATEST_NS) if reader.time is not None else NOW_NS
        return points_of(source, reader.readings(obj), ts)
    except Rejected as r:
        return (r.reason, r.detail)


def decoded(reader: JsonReadings, payload: bytes, source: Source = SOURCE) -> list[Point] | tuple[Reason, str]:
    try:
        return reader.decode(source, payload, NOW_NS, LATEST_NS)
    except Rejected as r:
        return (r.reason, r.detail)


@settings(max_examples=1500, deadline=None)
@given(first=OBJECTS, second=OBJECTS, swap=st.booleans())
def test_a_plan_reads_what_the_reference_reads(first: dict[str, Any], second: dict[str, Any], swap: bool) -> None:
    for reader in readers():
        for obj in (first, second, first, second) if not swap else (second, first, second):
            payload = json.dumps(obj).encode()
            want = reference(reader, json.loads(payload))
            assert decoded(reader, payload) == want


@given(
    values=st.lists(
        st.one_of(st.integers(-(2**1100), 2**1100), st.floats(allow_nan=False, allow_infinity=False)),
        min_size=9,
        max_size=9,
    )
)
@settings(max_examples=500, deadline=None)
def test_a_plan_reads_new_numbers_of_a_known_shape(values: list[float]) -> None:
    """The shape is known (the plan is used): only the numbers change, overflowing ones included."""
    reader = readers()[0]
    keys = ["Total", "Yesterday", "Today", "Power", "ApparentPower", "ReactivePower", "Factor", "Voltage", "Current"]
    warm = {"Time": "2025-11-25T03:00:00", "ENERGY": dict.fromkeys(keys, 1)}
    wide = Source("plug1", Kind.TELEMETRY, "sensor_readings")
    assert type(decoded(reader, json.dumps(warm).encode(), wide)) is list
    # ints past 64 bits take the stdlib parse; past a double's range they overflow (NON_FINITE)
    obj = {"Time": "2025-11-25T03:00:00", "ENERGY": dict(zip(keys, values, strict=True))}
    payload = json.dumps(obj).encode()
    assert decoded(reader, payload, wide) == reference(reader, json.loads(payload), wide)


def reference_shape(obj: dict[str, Any], depth: int = 1) -> Any:
    """shape_of's definition: each object's keys and value types, and its objects' shapes."""
    types = tuple(type(v) for v in obj.values())
    if dict not in types or depth >= MAX_DEPTH:
        return (tuple(obj), types)
    return (tuple(obj), types, tuple(reference_shape(v, depth + 1) for v in obj.values() if type(v) is dict))


@settings(max_examples=500, deadline=None)
@given(obj=OBJECTS, nesting=st.integers(0, MAX_DEPTH + 3))
def test_shape_of_is_its_definition(obj: dict[str, Any], nesting: int) -> None:
    deep = obj
    for _ in range(nesting):  # as deep as MAX_DEPTH and past it
        deep = {"a": deep, "b": 1}
    assert shape_of(deep) == reference_shape(deep)


def plan_key(reader: JsonReadings, obj: dict[str, Any]) -> Any:
    """What the reader keys its plans by: the shape and the unit context's values."""
    return (reference_shape(obj), tuple(obj.get(k) for k in reader.unit_context))


@settings(max_examples=1500, deadline=None)
@given(first=OBJECTS, second=OBJECTS, nesting=st.integers(0, MAX_DEPTH + 3), copy=st.sampled_from([0, 1, 2]))
def test_a_plan_fits_exactly_the_objects_of_its_key(
    first: dict[str, Any], second: dict[str, Any], nesting: int, copy: int
) -> None:
    """A device's last plan is tried first (Plan.fits) before the plans are looked up by key: it
    must fit an object exactly when the object's key is the plan's."""
    if copy == 2:  # the same shape, another TempUnit (the unit context): a plan of its own
        first["TempUnit"] = "C"
    if copy:  # the same shape: a copy through JSON
        second = json.loads(json.dumps(first))
        if copy == 2:
            second["TempUnit"] = "F"
    for _ in range(nesting):  # as deep as MAX_DEPTH and past it
        first, second = {"a": first, "b": 1}, {"a": second, "b": 1}
    for reader in readers():
        plan = Plan(first, reader.separator, reader.skip, reader.bools, no_units, reader.unit_context)
        assert plan.fits(first)
        assert plan.fits(second) is (plan_key(reader, first) == plan_key(reader, second))


@settings(max_examples=1500, deadline=None)
@given(
    first=OBJECTS,
    second=OBJECTS,
    copy=st.sampled_from([0, 1, 2]),
    limits=st.sampled_from([(12, 4), (3, 4), (12, 1)]),
)
def test_read_is_fits_then_points(first: dict[str, Any], second: dict[str, Any], copy: int, limits: Any) -> None:
    """Plan.read (a device's last plan, in one call) is ``points`` when the object fits, else False."""
    if copy == 1:  # the same shape, other numbers: the fast reading is taken
        second = json.loads(json.dumps(first), parse_int=lambda t: int(t) + 1, parse_float=lambda t: float(t) / 3)
    elif copy == 2:  # the same keys, integers now floats: another shape
        second = json.loads(json.dumps(first), parse_int=float)
    source = Source("plug1", Kind.TELEMETRY, "sensor_readings", max_fields=limits[0], max_units=limits[1])
    for reader in readers():
        if type(reference(reader, first)) is not list:
            continue  # a plan is made only of what the reference read
        plan = Plan(first, reader.separator, reader.skip, reader.bools, reader.unit_of, reader.unit_context)
        for obj in (first, second):
            want = plan.points(source, obj, 1) if plan.fits(obj) else False
            assert plan.read(source, obj, 1) == want


def test_the_energy_shape_is_read_directly() -> None:
    """Without this the property above could hold with the one-call reading never taken."""
    reader = readers()[0]
    obj = {"Time": "2025-11-25T03:00:00", "ENERGY": {"TotalStartTime": "2020-12-31", "Power": 12, "Factor": 0.6}}
    plan = Plan(obj, reader.separator, reader.skip, reader.bools, reader.unit_of, reader.unit_context)
    assert plan.direct is not None
    assert plan.read(SOURCE, obj, 1) == plan.points(SOURCE, obj, 1) != plan.read(SOURCE, {"ENERGY": {}}, 1) is False


def test_a_plan_is_made_and_used() -> None:
    """Without this the property above could hold with the fast path never taken."""
    reader = readers()[0]
    payload = b'{"Time":"2025-11-25T03:00:00","ENERGY":{"Power":12,"Voltage":234,"Factor":0.6}}'
    first = decoded(reader, payload)
    assert reader._plans is not None and len(reader._plans) == 1
    plan = next(iter(reader._plans.values()))
    assert reader._last == {"plug1": plan}  # the device's next message tries it first
    assert plan.fits(json.loads(payload.replace(b"234", b"235")))
    assert plan.points(SOURCE, json.loads(payload), 1) is not None
    assert decoded(reader, payload) == first
    fields: dict[str, FieldValue] = {"ENERGY.Power": 12.0, "ENERGY.Voltage": 234.0, "ENERGY.Factor": 0.6}
    declared = DeclaredUnits({"ENERGY.Power": "W", "ENERGY.Voltage": "V"})  # units the preset declares: no tag
    assert first == [Point("sensor_readings", "plug1", fields, 1_764_036_000_000_000_000, {}, declared)]
    fahrenheit = b'{"Time":"2025-11-25T03:00:00","TempUnit":"F","AM2301":{"Temperature":70,"Humidity":50}}'
    for _ in range(2):  # the reference, then the plan: the unit the payload sent stays a tag, on its own point
        assert [(p.fields, p.tags, p.declared) for p in decoded(reader, fahrenheit)] == [  # type: ignore[union-attr]
            ({"AM2301.Temperature": 70.0}, {"unit": "Far"}, None),
            ({"AM2301.Humidity": 50.0}, {}, DeclaredUnits({"AM2301.Humidity": "%RH"})),
        ]
    assert len(reader._plans) == 2 and reader._last["plug1"] is not plan
    assert decoded(reader, payload) == first and reader._last["plug1"] is plan  # the shape it had before


def test_a_plan_respects_lower_limits() -> None:
    """A plan made under one source's limits does not let a message past a stricter one."""
    reader = readers()[0]
    payload = b'{"ENERGY":{"Power":12,"Voltage":234,"Current":0.1,"Total":3}}'
    assert type(decoded(reader, payload)) is list
    with pytest.raises(Rejected) as e:
        reader.decode(Source("p", Kind.TELEMETRY, "m", max_fields=3), payload, NOW_NS, LATEST_NS)
    assert e.value.reason is Reason.TOO_MANY_FIELDS
    with pytest.raises(Rejected) as e:
        reader.decode(Source("p", Kind.TELEMETRY, "m", max_units=3), payload, NOW_NS, LATEST_NS)
    assert e.value.reason is Reason.TOO_MANY_FIELDS


ZONES = ["Europe/Berlin", "Australia/Lord_Howe", "America/St_Johns", "Asia/Kathmandu", "UTC", "Pacific/Apia"]


@settings(max_examples=3000, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    at=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)),
    near_dst=st.booleans(),
    minutes=st.integers(0, 24 * 60),
)
def test_a_local_time_from_a_cached_hour_is_the_reference(
    zone: str, at: datetime, near_dst: bool, minutes: int
) -> None:
    spec = TimeSpec(("Time",), "local", zone)
    if near_dst:  # the last Sundays of March and October, and early April / October (southern zones)
        at = datetime(at.year, (3, 10, 4, 9)[at.month % 4], 24 + at.day % 6) + timedelta(minutes=minutes)
    text = at.replace(microsecond=0).isoformat()
    for t in (text, text[:13] + ":00:00", text[:13] + ":59:59", text):  # warm the hour, then read from it
        try:
            want: int | str = spec._local(t)
        except ValueError as e:
            want = str(e)
        try:
            got: int | str = spec._parse(t)
        except ValueError as e:
            got = str(e)
        assert got == want, t


@pytest.mark.parametrize("zone", ZONES)
def test_every_hour_of_transition_years_reads_as_the_reference(zone: str) -> None:
    """Each hour of years with odd transitions (Lord Howe's 30-minute DST, Kathmandu's 1986 shift
    by 15 minutes, Apia's skipped day in 2011), read at minutes where a shift could fall."""
    spec = TimeSpec(("Time",), "local", zone)
    for year in (1986, 2011, 2025):
        at = datetime(year, 1, 1)
        while at.year == year:
            hour = at.isoformat()[:13]
            for tail in (":00:00", ":14:59", ":15:00", ":29:59", ":30:00", ":44:59", ":45:00", ":59:59"):
                assert spec._parse(hour + tail) == spec._local(hour + tail), hour + tail
            at += timedelta(hours=1)
