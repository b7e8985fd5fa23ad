"""Declared units (issue 18's storage model): a unit the mapping declares is not a tag on each
point; the declared-unit readings of a message are one point, and the unit is recorded once per
(device, measurement, field) and day in ``field_units``. A unit the payload sends that differs from
the declared one keeps the ``unit`` tag on its own point. (End to end against influxd:
tests/test_mappings_e2e.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.model import DeclaredUnits, Point, Reason, Rejected
from ingest.decoding.cardinality import CardinalityGuard
from ingest.decoding.decode import Decoder
from ingest.decoding.field_units import DAY_NS, MEASUREMENT, FieldUnitsLog
from ingest.decoding.mappings import parse_mappings
from ingest.decoding.topics import Topics
from ingest.routing import TIMESERIES, Router
from tests import preset_payloads as doc

NOW = 1_800_000_000_000_000_000
TS = 1609459200_000_000_000  # 2021-01-01T00:00:00 (UTC): the payloads' Time
ENERGY_UNITS = {
    "ENERGY.Total": "kWh",
    "ENERGY.Yesterday": "kWh",
    "ENERGY.Today": "kWh",
    "ENERGY.Power": "W",
    "ENERGY.ApparentPower": "VA",
    "ENERGY.ReactivePower": "var",
    "ENERGY.Voltage": "V",
    "ENERGY.Current": "A",
}
AM2301_F = (
    b'{"Time":"2021-01-01T00:00:00","AM2301":{"Temperature":70.9,"Humidity":53.4,"DewPoint":52.9},"TempUnit":"F"}'
)


def decoder(guard: CardinalityGuard | None = None) -> Decoder:
    return Decoder(topics=Topics(parse_mappings('[[mapping]]\npreset = "tasmota"\n')), guard=guard)


def decode(payload: bytes, topic: str = "tele/plug1/SENSOR", d: Decoder | None = None) -> list[Point]:
    points = (d or decoder()).decode(topic, payload, NOW)
    assert isinstance(points, list)
    return points


@pytest.mark.parametrize("twice", [False, True])  # the second message of a shape takes the compiled plan
def test_a_tasmota_energy_message_is_one_point_in_declared_units(twice: bool) -> None:
    d = decoder()
    if twice:
        decode(doc.TASMOTA_SENSOR, d=d)
    [point] = decode(doc.TASMOTA_SENSOR, d=d)
    assert point.tags == {}
    assert len(point.fields) == 9 and point.fields["ENERGY.Factor"] == 0.6
    assert point.declared == DeclaredUnits(ENERGY_UNITS)  # Factor has no unit: in the point, not declared


@pytest.mark.parametrize("twice", [False, True])
def test_a_fahrenheit_reading_keeps_its_unit_tag_on_its_own_point(twice: bool) -> None:
    d = decoder()
    if twice:
        decode(AM2301_F, d=d)
    points = decode(AM2301_F, d=d)
    assert [(p.fields, p.tags, p.declared) for p in points] == [
        ({"AM2301.Temperature": 70.9, "AM2301.DewPoint": 52.9}, {"unit": "Far"}, None),
        ({"AM2301.Humidity": 53.4}, {}, DeclaredUnits({"AM2301.Humidity": "%RH"})),
    ]
    # TempUnit C is the declared unit: one point, no tag
    [point] = decode(doc.TASMOTA_SENSOR_AM2301, d=d)
    assert point.tags == {} and point.declared is not None and point.declared.units["AM2301.Temperature"] == "Cel"


def test_a_pressure_unit_the_payload_sends_is_a_tag_unless_it_is_the_declared_one() -> None:
    def bme(unit: object) -> bytes:
        return b'{"Time":"2021-01-01T00:00:00","BME280":{"Pressure":750.1,"Humidity":40},"PressureUnit":%s}' % (
            b'"%s"' % unit.encode() if isinstance(unit, str) else str(unit).encode()
        )

    mmhg = decode(bme("mmHg"))
    assert [(p.fields, p.tags) for p in mmhg] == [
        ({"BME280.Pressure": 750.1}, {"unit": "mmHg"}),
        ({"BME280.Humidity": 40.0}, {}),
    ]
    [hpa] = decode(bme("hPa"))
    assert hpa.tags == {} and hpa.declared == DeclaredUnits({"BME280.Pressure": "hPa", "BME280.Humidity": "%RH"})
    # a unit that cannot be a tag: the reading's unit is unknown, so it is not stored as hPa
    with pytest.raises(Rejected) as e:
        decode(bme("mm Hg!"))
    assert e.value.reason is Reason.INVALID_NAME
    with pytest.raises(Rejected) as e:
        decode(bme(3))
    assert e.value.reason is Reason.WRONG_TYPE


def test_a_user_mapping_units_table_is_declared() -> None:
    d = Decoder(
        topics=Topics(
            parse_mappings(
                '[[mapping]]\ntopic = "plant/{device}/env"\nfields = { t = "t", rh = "rh", n = "n" }\n'
                'units = { t = "Cel", rh = "%RH" }\n'
            )
        )
    )
    [point] = d.decode("plant/p1/env", b'{"t": 21, "rh": 40, "n": 3}', NOW)  # type: ignore[misc]
    assert point.tags == {} and point.fields == {"t": 21.0, "rh": 40.0, "n": 3.0}
    assert point.declared == DeclaredUnits({"t": "Cel", "rh": "%RH"})


def test_the_router_records_declared_units_once_per_device_field_and_day() -> None:
    router = Router(decoder(), batch_size=1000, flush_interval=60.0)
    for _ in range(3):
        router.handle("tele/plug1/SENSOR", doc.TASMOTA_SENSOR, None, NOW)
    router.handle("tele/plug2/SENSOR", doc.TASMOTA_SENSOR, None, NOW)
    next_day = doc.TASMOTA_SENSOR.replace(b"2021-01-01T00", b"2021-01-02T00")
    router.handle("tele/plug1/SENSOR", next_day, None, NOW)
    items = router.buffers[TIMESERIES].items
    readings = [p for p in items if p.measurement == "sensor_readings"]
    units = [p for p in items if p.measurement == MEASUREMENT]
    assert len(readings) == 5 and all(p.tags == {} for p in readings)
    assert len(units) == 3 * len(ENERGY_UNITS)  # plug1 day 1, plug2 day 1, plug1 day 2
    plug1 = {(p.tags["field"], p.fields["unit"], p.ts_ns) for p in units if p.device_id == "plug1"}
    assert plug1 == {(f, u, day) for f, u in ENERGY_UNITS.items() for day in (TS, TS + DAY_NS)}
    assert all(p.tags == {"measurement": "sensor_readings", "field": p.tags["field"]} for p in units)
    # each field_units point settles with the message it came in (the batch's origins line up)
    assert len(router.buffers[TIMESERIES].origins) == len(items)


def test_the_log_starts_the_day_over_for_each_new_day_only() -> None:
    log = FieldUnitsLog()
    declared = DeclaredUnits({"a": "W"})
    first = log.add([Point("m", "d", {"a": 1.0}, TS + 5, {}, declared)])
    assert [(p.fields, p.ts_ns) for p in first[1:]] == [({"unit": "W"}, TS)]
    assert len(log.add([Point("m", "d", {"a": 1.0}, TS + 9, {}, DeclaredUnits({"a": "W"}))])) == 1
    # another declared unit for the same field (the mapping changed): recorded
    assert [p.fields for p in log.add([Point("m", "d", {"a": 1.0}, TS + 9, {}, DeclaredUnits({"a": "kW"}))])[1:]] == [
        {"unit": "kW"}
    ]


UNIT_SETS = [DeclaredUnits({"a": "W"}), DeclaredUnits({"a": "kW"}), DeclaredUnits({"a": "W", "b": "V"})]


@settings(max_examples=500, deadline=None)
@given(
    messages=st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(["d1", "d2"]),
                st.sampled_from(["m", "n"]),
                st.sampled_from([None, 0, 1, 2]),  # declared units (equal copies are another object)
                st.booleans(),
                st.integers(0, 3),  # the day
            ),
            min_size=1,
            max_size=3,
        ),
        max_size=30,
    )
)
def test_the_log_records_each_unit_once_per_device_field_and_day(messages: list[list[Any]]) -> None:
    """Whatever the points, the log adds exactly the records not added before (a reference set of
    (device, measurement, field, unit, day)), in the points' order, after the message's points."""
    log, recorded = FieldUnitsLog(), set()
    for message in messages:
        points = []
        for device, m, units, copy, day in message:
            declared = None if units is None else UNIT_SETS[units]
            if declared is not None and copy:
                declared = DeclaredUnits(dict(declared.units))
            points.append(Point(m, device, {"a": 1.0}, TS + day * DAY_NS + 7, {}, declared))
        want = list(points)
        for p in points:
            for name, unit in p.declared.units.items() if p.declared is not None else ():
                key = (p.device_id, p.measurement, name, unit, TS + (p.ts_ns - TS) // DAY_NS * DAY_NS)
                if key not in recorded:
                    recorded.add(key)
                    want.append(
                        Point(MEASUREMENT, key[0], {"unit": unit}, key[4], {"measurement": key[1], "field": name})
                    )
        assert log.add(points) == want


def test_a_declared_unit_counts_against_the_unit_budget() -> None:
    d = decoder(CardinalityGuard(max_new_units=5))  # the ENERGY message declares six units
    with pytest.raises(Rejected) as e:
        d.decode("tele/plug1/SENSOR", doc.TASMOTA_SENSOR, NOW)
    assert e.value.reason is Reason.CARDINALITY_LIMIT and "6 new units" in e.value.detail
    d = decoder(CardinalityGuard(max_new_units=6))
    d.decode("tele/plug1/SENSOR", doc.TASMOTA_SENSOR, NOW)
    d.decode("tele/plug1/SENSOR", doc.TASMOTA_SENSOR, NOW)  # known units are free
    with pytest.raises(Rejected) as e:  # Far (a tag) and %RH (declared): two more
        d.decode("tele/plug1/SENSOR", AM2301_F, NOW)
    assert e.value.reason is Reason.CARDINALITY_LIMIT


def test_every_worker_and_restart_writes_the_identical_record() -> None:
    """Two processes (workers, or one before and after a restart) that see a device at different
    times of one day write the same field_units points: an idempotent overwrite, not a new row."""

    def records(payload: bytes) -> list[tuple[str, str, tuple[tuple[str, str], ...], dict[str, object], int]]:
        router = Router(decoder(), batch_size=1000, flush_interval=60.0)
        router.handle("tele/plug1/SENSOR", payload, None, NOW)
        units = [p for p in router.buffers[TIMESERIES].items if p.measurement == MEASUREMENT]
        return sorted((p.measurement, p.device_id, tuple(sorted(p.tags.items())), p.fields, p.ts_ns) for p in units)

    later = doc.TASMOTA_SENSOR.replace(b"2021-01-01T00:00:00", b"2021-01-01T17:42:09")
    assert records(doc.TASMOTA_SENSOR) == records(later) != []
