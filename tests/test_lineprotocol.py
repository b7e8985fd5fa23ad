"""Line protocol encoding: escaping, types, refusals; round trip through a real influxd."""

from __future__ import annotations

from typing import Any

import pytest

from core.model import FieldValue, Point
from core.stores import SeriesQuery
from ingest.stores.influxdb1 import InfluxDB1Store
from ingest.stores.lineprotocol import Unencodable, encode, encode_batch, encode_point
from ingest.stores.partial_writes import bisect_rejections
from tests.servers import Influxd


def test_basic_line_numbers_are_floats_and_tags_sorted() -> None:
    p = Point(
        "sensor_readings",
        "dev-1",
        {"t": 21, "h": 40.5, "ok": True, "msg": "hi"},
        1_000,
        {"site": "b", "device_type": "a"},
    )
    assert encode_point(p) == (
        'sensor_readings,device_id=dev-1,device_type=a,site=b t=21.0,h=40.5,ok=true,msg="hi" 1000'
    )


def test_escaping_of_keys_tag_values_and_strings() -> None:
    p = Point("m x,y", "d", {"f k=,": 'say "hi" \\ there\tnext'}, 5, {"t k": "v,=w x"})
    assert encode_point(p) == ('m\\ x\\,y,device_id=d,t\\ k=v\\,\\=w\\ x f\\ k\\=\\,="say \\"hi\\" \\\\ there\tnext" 5')


def test_floats_keep_full_precision_and_bool_is_not_a_number() -> None:
    line = encode_point(Point("m", "d", {"a": 0.1 + 0.2, "b": 1e16, "c": False}, 1))
    assert "a=0.30000000000000004" in line and "b=1e+16" in line and "c=false" in line


@pytest.mark.parametrize(
    ("fields", "tags", "why"),
    [
        ({"x": float("nan")}, {}, "not finite"),
        ({"x": float("inf")}, {}, "not finite"),
        ({}, {}, "no fields"),
        ({"a\nb": 1.0}, {}, "control character"),
        ({"x": 1.0}, {"t": "ends\\"}, "backslash"),
        ({"a\\,b": 1.0}, {}, "backslash"),
        ({"a\\ b": 1.0}, {}, "backslash"),
        ({"x": 1.0}, {"t": "a\\,b"}, "backslash"),
        ({"x": "line\nbreak"}, {}, "control character"),
        ({"x": "cr\r"}, {}, "control character"),
        ({"x": "nul\x00"}, {}, "control character"),
        ({"x": "\ud800"}, {}, "surrogate"),
        ({"": 1.0}, {}, "empty"),
        ({"x": [1]}, {}, "unsupported type"),
    ],
)
def test_unencodable_points(fields: dict[str, Any], tags: dict[str, Any], why: str) -> None:
    with pytest.raises(Unencodable, match=why):
        encode_point(Point("m", "d", fields, 1, tags))


def test_encode_batch_separates_unencodable() -> None:
    good = Point("m", "d", {"x": 1.0}, 1)
    bad = Point("m", "d", {"x": float("nan")}, 2)
    ok, lines, rejected = encode_batch([good, bad, good])
    assert ok == [good, good] and len(lines) == 2
    assert [(p.ts_ns, "not finite" in r) for p, r in rejected] == [(2, True)]
    assert encode([good]) == b"m,device_id=d x=1.0 1"


def test_bisect_pins_each_refused_item() -> None:
    items = list(range(37))
    bad = {3, 17, 36}
    calls = []

    def send(lines: object) -> str | None:
        chunk = [int(x) for x in lines]  # type: ignore[attr-defined]
        calls.append(len(chunk))
        return "bad" if bad & set(chunk) else None

    out = bisect_rejections(items, [str(i) for i in items], send)
    assert sorted(i for i, _ in out) == sorted(bad)
    assert len(calls) < 40
    assert bisect_rejections(items, [str(i) for i in items], lambda _: None) == []


@pytest.mark.influxd
def test_round_trip_through_influxd(influxdb1_url: str, influxd_server: Influxd) -> None:
    store = InfluxDB1Store.from_url(influxdb1_url)
    store.connect()
    try:
        fields: dict[str, FieldValue] = {
            "we ird,=key": 'quote " back \\ slash\ttab, = \\" end\\',
            "n": 42,
            "b": True,
            "f": -1.5e-7,
        }
        tags = {"site": "hall 1,=x", "unit": "°C"}
        assert store.write([Point("m,x y", "dev.1:a", fields, 1_700_000_000_123_456_789, tags)]) == []
        rows = store.query(SeriesQuery("m,x y", "dev.1:a", 0, limit=10))
        assert [(r.ts_ns, r.values) for r in rows] == [(1_700_000_000_123_456_789, {**fields, "n": 42.0})]
        raw = influxd_server.query('SELECT * FROM "m,x y"', influxdb1_url.rsplit("/", 1)[1])
        series = raw["results"][0]["series"][0]
        row = dict(zip(series["columns"], series["values"][0], strict=True))
        assert (row["device_id"], row["site"], row["unit"]) == ("dev.1:a", "hall 1,=x", "°C")
    finally:
        store.close()


def test_an_int_beyond_a_floats_range_is_refused_not_raised_into_the_writer() -> None:
    """``float(10**309)`` overflows: the point is refused with a reason (dead-lettered by the
    writer), its neighbours in the batch are written; nothing raises out of ``encode_batch``."""
    fine = Point("m", "d", {"a": 1.5}, 1)
    huge = Point("m", "d", {"a": 1.5, "b": 10**309}, 2)
    ok, lines, bad = encode_batch([fine, huge, fine])
    assert ok == [fine, fine] and len(lines) == 2
    assert bad == [(huge, "unencodable: field 'b' is out of range")]
