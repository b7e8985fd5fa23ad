"""Issue 7, items 1-2: a device cannot write into another device's series or hijack its queries.

Each attack from the hostile review is replayed against a real influxd 1.6.7: through the whole
pipeline (Mosquitto → `iot ingest run` → influxd), through the store's write path alone (as if
the decoder let it through), and as legacy data already in the database (queries must use
``::tag``). A property test then throws arbitrary keys and values at the encoder and checks that
influxd stores exactly one point per accepted point, in its own series.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from core.model import Point, Reason, Rejected
from core.stores import SeriesQuery
from ingest.decoding.decode import Decoder
from ingest.decoding.names import TAG_KEYS
from ingest.stores import open_timeseries
from ingest.stores.influxdb1 import InfluxDB1Store
from registry.db import make_engine, migrate
from registry.deadletters import DeadLetterStore
from registry.models import Device
from tests.cli_runner import run_iot
from tests.daemon_proc import DaemonProcess
from tests.faultkit import influx_query, publish_raw
from tests.servers import Influxd, Mosquitto, wait_for

M = "sensor_readings"
S = 10**9


def forged_line(ns: int) -> str:
    return f"sensor_readings,device_id=victim temperature=999 {ns}"


def attacks(root: str, ts_ms: int, forge_ns: int) -> list[tuple[str, bytes, Reason]]:
    """The reproductions from the issue, each with the reason it must now be dead-lettered for."""
    line = forged_line(forge_ns)
    t = f"{root}/attk/telemetry"
    return [
        (t, json.dumps({"a\\,b": 1, "m": f"x\n{line}\n#", "ts": ts_ms}).encode(), Reason.INVALID_NAME),
        (t, json.dumps({"ok": 1, "m": f"x\n{line}\n#", "ts": ts_ms}).encode(), Reason.WRONG_TYPE),
        (
            f"{root}/attk/events",
            json.dumps({"level": "info", "code": "E1", "message": f'x"\n{line}\n#', "ts": ts_ms}).encode(),
            Reason.WRONG_TYPE,
        ),
        (
            t,
            json.dumps([{"n": "a", "u": "a\\ b\\,c\\,d", "vs": f"x\n{line}\n#", "t": 0}]).encode(),
            Reason.INVALID_SENML,
        ),
        (t, json.dumps([{"n": "a", "u": "a\\ b\\,c\\,d", "vs": "x", "t": 0}]).encode(), Reason.INVALID_NAME),
        (t, json.dumps({"device_id": "victim", "temperature": 1000, "ts": ts_ms}).encode(), Reason.RESERVED_NAME),
        (
            t,
            json.dumps([{"n": "device_id", "vs": "victim"}, {"n": "temperature", "v": 1000}]).encode(),
            Reason.RESERVED_NAME,
        ),
        (f"{root}/attk/metrics", json.dumps({"site": "A", "cpu": 1}).encode(), Reason.RESERVED_NAME),
        (f"{root}/attk/events", json.dumps({"level": "error", "device_id": "victim"}).encode(), Reason.RESERVED_NAME),
        # a device whose admin-set site ends in a backslash (a legacy registry row)
        (f"{root}/badsite/telemetry", json.dumps({"temperature": 5, "m": f"x\n{line}"}).encode(), Reason.WRONG_TYPE),
        (f"{root}/badsite/telemetry", json.dumps({"temperature": 5}).encode(), Reason.INVALID_NAME),
    ]


def victim_rows(url: str) -> list[dict[str, Any]]:
    res = influx_query(url, f"SELECT * FROM {M} WHERE \"device_id\"::tag = 'victim'")
    assert res is not None
    out = []
    for s in res["results"][0].get("series", []):
        for v in s["values"]:
            out.append({c: x for c, x in zip(s["columns"], v, strict=True) if x is not None})
    return out


@pytest.mark.mosquitto
@pytest.mark.influxd
def test_attacks_through_the_pipeline_forge_nothing(
    tmp_path: Path,
    mosquitto_server: Mosquitto,
    influxdb1_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    migrate(registry)
    engine = make_engine(registry)
    now = datetime.now(UTC)
    with Session(engine) as s:
        for dev, site in (("victim", "A"), ("attk", "A"), ("badsite", "s\\")):
            s.add(Device(id=dev, type="sensor", site=site, status="active", created_at=now))
        s.commit()
    root = "sec" + uuid.uuid4().hex[:6]
    daemon = DaemonProcess.on_root(
        tmp_path / "daemon", mosquitto_server.url, root, timeseries=influxdb1_url, registry=registry
    ).start()
    try:
        t_ms = time.time_ns() // 10**6 - 60_000
        victim_ts = t_ms * 10**6
        cases = attacks(root, t_ms, victim_ts + S)
        messages = [(f"{root}/victim/telemetry", json.dumps({"temperature": 20.5, "ts": t_ms}).encode())]
        messages += [(topic, payload) for topic, payload, _ in cases]
        messages.append((f"{root}/attk/telemetry", json.dumps({"temperature": 1.0, "ts": t_ms}).encode()))
        publish_raw(mosquitto_server.url, messages)
        letters = DeadLetterStore(engine)
        wait_for(lambda: letters.count() >= len(cases), 30, "every attack to be dead-lettered")
        wait_for(lambda: len(victim_rows(influxdb1_url)) >= 1, 30, "the victim's reading")
        wait_for(lambda: daemon.metrics().get("iot_unacked_messages") == 0.0, 30, "every message settled")
    finally:
        assert daemon.terminate() == 0

    assert victim_rows(influxdb1_url) == [
        {"time": victim_ts, "device_id": "victim", "device_type": "sensor", "site": "A", "temperature": 20.5}
    ]
    got = sorted((d.topic, d.payload, d.reason) for d in DeadLetterStore(engine).list(limit=100))
    assert got == sorted((topic, payload, str(reason)) for topic, payload, reason in cases)
    keys = influx_query(influxdb1_url, f"SHOW FIELD KEYS FROM {M}")
    assert keys is not None
    assert {v[0] for s in keys["results"][0]["series"] for v in s["values"]} == {"temperature"}

    monkeypatch.setenv("IOT_REGISTRY_URL", registry)
    monkeypatch.setenv("IOT_TIMESERIES_URL", influxdb1_url)
    monkeypatch.setenv("IOT_DOCUMENTS_URL", "embedded")
    monkeypatch.setenv("IOT_DATA_DIR", str(tmp_path / "cli"))
    monkeypatch.delenv("IOT_API_KEY", raising=False)
    q = run_iot(monkeypatch, capsys, "telemetry", "query", "--device", "victim", "--since", "1h", "--json")
    assert q.code == 0, q.err
    assert [(r["ts_ns"], r["temperature"], sorted(r)) for r in q.json()] == [
        (victim_ts, 20.5, ["temperature", "time", "ts_ns"])
    ]
    show = run_iot(monkeypatch, capsys, "devices", "show", "victim", "--json")
    assert show.code == 0, show.err
    assert {f: v["value"] for f, v in show.json()["telemetry"].items()} == {"temperature": 20.5}


def raw_attack_points(forge_ns: int) -> list[Point]:
    """What the old decoder let through: each must be refused by the encoder, never forge a line."""
    line = forged_line(forge_ns)
    return [
        Point(M, "attk", {"a\\,b": 1.0, "m": f"x\n{line}\n#"}, forge_ns),
        Point(M, "attk", {"a\\ b": 1.0, "m": f'x" {line}'}, forge_ns),
        Point(M, "attk", {"m": f'x"\n{line}\n#'}, forge_ns),
        Point(M, "attk", {"a": "x"}, forge_ns, {"unit": "a\\ b\\,c\\,d"}),
        Point(M, "attk", {"a": f"x\n{line}"}, forge_ns, {"unit": "a\\ b\\,c\\,d"}),
        Point(M, "attk", {"temperature": 5.0}, forge_ns, {"site": "s\\"}),
        Point(M, "attk", {"temperature": 5.0}, forge_ns, {"site": f"s\n{line}"}),
        Point("event_logs", "attk", {"message": f"x\n{line}\n#"}, forge_ns, {"level": "info"}),
    ]


@pytest.mark.influxd
def test_encoder_refuses_each_raw_attack(influxdb1_url: str) -> None:
    store = InfluxDB1Store.from_url(influxdb1_url)
    store.connect()
    try:
        base = time.time_ns() - 3600 * S
        assert store.write([Point(M, "victim", {"temperature": 20.5}, base)]) == []
        attack = raw_attack_points(base + S)
        refused = store.write(attack)
        assert [id(p) for p, _ in refused] == [id(p) for p in attack]
        assert all("unencodable" in why for _, why in refused)
        assert victim_rows(influxdb1_url) == [{"time": base, "device_id": "victim", "temperature": 20.5}]
    finally:
        store.close()


@pytest.mark.parametrize("backend", ["embedded", pytest.param("influxdb1", marks=pytest.mark.influxd)])
def test_queries_match_the_tag_not_a_field_of_the_same_name(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Data stored before the decoder refused it: an attacker's field ``device_id="victim"``."""
    url = "embedded" if backend == "embedded" else request.getfixturevalue("influxdb1_url")
    store = open_timeseries(url, data_dir=tmp_path)
    store.connect()
    try:
        base = time.time_ns() - 3600 * S
        shadow = Point(M, "attk", {"device_id": "victim", "temperature": 1000.0}, base + S, {"site": "victim"})
        assert store.write([Point(M, "victim", {"temperature": 20.5}, base), shadow]) == []
        rows = store.query(SeriesQuery(M, "victim", base - S))
        assert [(r.ts_ns, r.values) for r in rows] == [(base, {"temperature": 20.5})]
        agg = store.query(SeriesQuery(M, "victim", base - 60 * S, until_ns=base + 60 * S, every_s=3600, agg="max"))
        assert [r.values for r in agg] == [{"temperature": 20.5}]
        assert store.latest(M, "victim") == {"temperature": (base, 20.5)}
        assert store.count(M, "victim") == 1
    finally:
        store.close()


# --- property: what the encoder accepts, influxd stores exactly once, in the right series -------------

_text = st.text(st.characters(exclude_categories=["Cs"]), min_size=0, max_size=12)
FORGE = "\n@M@,device_id=d0 forged=1 1700000000000000000\n"  # a whole line aimed at d0's series
_tricky = st.lists(st.sampled_from([*' ,="\\\n\r\t#xa', "é", "\\,", "\\ ", FORGE]), max_size=6).map("".join)
_keys = st.one_of(_text, _tricky).filter(lambda k: k not in TAG_KEYS and k != "time")
_values = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.booleans(), _text, _tricky)
_points = st.lists(
    st.tuples(
        st.dictionaries(_keys, _values, min_size=1, max_size=4),
        st.dictionaries(st.sampled_from(["site", "unit", "device_type"]), st.one_of(_text, _tricky), max_size=3),
    ),
    min_size=1,
    max_size=4,
)


@pytest.fixture(scope="module")
def prop_store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = Influxd(tmp_path_factory.mktemp("influxd-prop")).start()
    url = server.create_database("prop")
    store = InfluxDB1Store.from_url(url)
    store.connect()
    yield server, store
    store.close()
    server.stop()


def _series(server: Influxd, measurement: str) -> dict[str, Any]:
    q = 'SELECT * FROM "' + measurement.replace("\\", "\\\\").replace('"', '\\"') + '" GROUP BY *'
    res = server.query(q, "prop")["results"][0]
    assert "error" not in res, res
    out = {}
    for s in res.get("series", []):
        assert len(s["values"]) == 1, s  # one point per series: nothing split, nothing forged
        out[s["tags"]["device_id"]] = (s["tags"], dict(zip(s["columns"], s["values"][0], strict=True)))
    return out


@pytest.mark.influxd
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(points=_points)
def test_influxd_stores_exactly_one_point_per_accepted_point(prop_store: Any, points: list[Any]) -> None:
    server, store = prop_store
    measurement = "p" + uuid.uuid4().hex[:12]
    ts = 1_700_000_000 * S

    def aim(v: Any) -> Any:
        return v.replace("@M@", measurement) if type(v) is str else v

    batch = [
        Point(
            measurement, f"d{i}", {aim(k): aim(v) for k, v in fields.items()}, ts, {k: aim(v) for k, v in tags.items()}
        )
        for i, (fields, tags) in enumerate(points)
    ]
    refused = {p.device_id for p, _ in store.write(batch)}
    stored = _series(server, measurement)
    assert set(stored) == {p.device_id for p in batch} - refused
    for p in batch:
        if p.device_id in refused:
            continue
        tags, row = stored[p.device_id]
        assert {k: v for k, v in tags.items() if v} == {
            "device_id": p.device_id,
            **{k: v for k, v in p.tags.items() if v},
        }
        assert row["time"] == ts
        # influxd prints large floats as JSON integers: compare numbers as floats
        got = {k: float(v) if type(v) is int else v for k, v in row.items() if k != "time" and v is not None}
        want = {k: float(v) if type(v) is float else v for k, v in p.fields.items()}
        assert got == want


@settings(max_examples=200, deadline=None)
@given(obj=st.dictionaries(_keys, _values, min_size=1, max_size=5))
def test_decoder_output_is_always_encodable(obj: dict[str, Any]) -> None:
    """The decoder's checks are stricter than the encoder's: nothing it accepts is unencodable."""
    from ingest.stores.lineprotocol import encode_point

    try:
        points = Decoder().decode_unguarded("devices/d1/telemetry", json.dumps(obj).encode(), time.time_ns())
    except Rejected:
        return
    assert isinstance(points, list)
    for p in points:
        p.tags.update(site="A", device_type="t")
        encode_point(p)
