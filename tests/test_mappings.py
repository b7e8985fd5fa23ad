"""Topic mappings and firmware presets (issue 18): the loader, each preset against its documented
payloads, dead letters for what yields nothing, `iot mappings check|test`, and the subscriptions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.config import Settings
from core.model import Kind, Point, Reason, Rejected, StatusChange
from ingest.decoding.decode import Decoder
from ingest.decoding.mapping_rule import MappingRule, device_id_of
from ingest.decoding.mappings import MappingError, load_mappings, overlaps, parse_mappings
from ingest.decoding.topics import ContractTopics, Topics
from ingest.mqtt.broker import parse_broker_url
from ingest.mqtt.options import session_options
from tests import preset_payloads as doc
from tests.cli_runner import run_iot

NOW = 1_800_000_000_000_000_000  # 2027-01-15


def decoder(text: str = doc.ALL_PRESETS) -> Decoder:
    return Decoder(topics=Topics(parse_mappings(text)))


def fields(points: Any) -> dict[str, tuple[Any, str | None]]:
    """Each field's value and unit, however the unit is stored (a tag, or declared: field_units)."""
    assert isinstance(points, list)
    out: dict[str, tuple[Any, str | None]] = {}
    for p in points:
        declared = p.declared.units if p.declared is not None else {}
        assert not (declared and "unit" in p.tags)  # a point is in declared units or in its tag's
        out |= {k: (v, p.tags.get("unit") or declared.get(k)) for k, v in p.fields.items()}
    return out


def test_the_issue_file_works_verbatim(tmp_path: Path) -> None:
    f = tmp_path / "mappings.toml"
    f.write_text(doc.ISSUE_FILE)
    rules = load_mappings(f)
    assert [r.filter for r in rules] == [
        "tele/+/SENSOR",
        "tele/+/STATE",
        "tele/+/LWT",
        "zigbee2mqtt/+",
        "zigbee2mqtt/+/availability",
        "plant/+/+/env",
        "devices/#",  # the built-in contract, implicitly last
    ]
    d = Decoder(topics=Topics(rules))
    points = d.decode(
        "plant/north/pump-7/env", b'{"t":"2024-05-01T10:00:00Z","temp_c":21,"rh":40,"accel":{"x":0.1}}', NOW
    )
    assert fields(points) == {"temperature": (21.0, "Cel"), "humidity": (40.0, "%RH"), "vibration.x": (0.1, None)}
    assert {p.device_id for p in points} == {"pump-7"}  # type: ignore[union-attr]
    assert {p.ts_ns for p in points} == {1714557600_000_000_000}  # type: ignore[union-attr]
    # the contract still works beside the mappings
    assert d.decode("devices/d1/telemetry", b'{"t": 1}', NOW) == [Point("sensor_readings", "d1", {"t": 1.0}, NOW, {})]


def test_tasmota_sensor_local_time_in_the_configured_zone() -> None:
    points = decoder().decode("tele/tasmota_0A1B2C/SENSOR", doc.TASMOTA_SENSOR, NOW)
    assert fields(points) == {
        "ENERGY.Total": (0.003, "kWh"),
        "ENERGY.Yesterday": (0.0, "kWh"),
        "ENERGY.Today": (0.003, "kWh"),
        "ENERGY.Power": (12.0, "W"),
        "ENERGY.ApparentPower": (20.0, "VA"),
        "ENERGY.ReactivePower": (16.0, "var"),
        "ENERGY.Factor": (0.6, None),
        "ENERGY.Voltage": (234.0, "V"),
        "ENERGY.Current": (0.085, "A"),
    }
    assert isinstance(points, list)
    # 2021-01-01T00:00:00 in Europe/Berlin (UTC+1 in winter) is 2020-12-31T23:00:00Z
    assert {p.ts_ns for p in points} == {1609455600_000_000_000}
    assert {p.measurement for p in points} == {"sensor_readings"}
    utc = decoder(doc.ISSUE_FILE).decode("tele/tasmota_0A1B2C/SENSOR", doc.TASMOTA_SENSOR, NOW)
    assert {p.ts_ns for p in utc} == {1609459200_000_000_000}  # type: ignore[union-attr]
    am = decoder().decode("tele/t2/SENSOR", doc.TASMOTA_SENSOR_AM2301, NOW)
    assert fields(am) == {
        "AM2301.Temperature": (21.6, "Cel"),
        "AM2301.Humidity": (53.4, "%RH"),
        "AM2301.DewPoint": (11.6, "Cel"),
    }


def test_tasmota_state_and_lwt() -> None:
    d = decoder()
    state = d.decode("tele/tasmota_9CF9D1/STATE", doc.TASMOTA_STATE, NOW)
    got = fields(state)
    assert got["UptimeSec"] == (611.0, "s") and got["Wifi.Signal"] == (-78.0, "dBm") and got["POWER"] == (False, None)
    assert {p.measurement for p in state} == {"device_metrics"}  # type: ignore[union-attr]
    assert d.decode("tele/tasmota_9CF9D1/LWT", b"Online", NOW) == StatusChange("tasmota_9CF9D1", True, NOW / 1e9)
    assert d.decode("tele/tasmota_9CF9D1/LWT", b"Offline", NOW) == StatusChange("tasmota_9CF9D1", False, NOW / 1e9)


def test_zigbee2mqtt_readings_availability_and_friendly_names() -> None:
    d = decoder()
    points = d.decode("zigbee2mqtt/Living Room", doc.Z2M_STATE, NOW)
    assert fields(points) == {
        "battery": (100.0, "%"),
        "humidity": (58.12, "%RH"),
        "linkquality": (78.0, "lqi"),
        "pressure": (1008.0, "hPa"),
        "temperature": (22.15, "Cel"),
        "voltage": (3055.0, "mV"),
    }
    assert {p.device_id for p in points} == {"Living_Room"}  # type: ignore[union-attr]
    assert d.decode("zigbee2mqtt/Living Room/availability", doc.Z2M_AVAILABILITY_JSON, NOW) == StatusChange(
        "Living_Room", True, NOW / 1e9
    )
    assert d.decode("zigbee2mqtt/Living Room/availability", doc.Z2M_AVAILABILITY_PLAIN, NOW) == StatusChange(
        "Living_Room", False, NOW / 1e9
    )
    topics = d.topics
    assert topics.gateway_of("zigbee2mqtt/Living Room") == "zigbee2mqtt"
    with pytest.raises(Rejected) as e:  # the bridge is not a device
        d.decode("zigbee2mqtt/bridge", b'{"state":"online"}', NOW)
    assert e.value.reason is Reason.BAD_TOPIC
    with pytest.raises(Rejected) as e:  # a name that cannot be a device id is dead-lettered
        d.decode("zigbee2mqtt/" + "x" * 65, doc.Z2M_STATE, NOW)
    assert e.value.reason is Reason.BAD_TOPIC


def test_device_levels_are_sanitised_into_the_allow_list() -> None:
    assert device_id_of("Living Room") == "Living_Room"
    assert device_id_of("Küche/Herd") == "K_che_Herd"
    assert device_id_of("ok-1.a:b_c") == "ok-1.a:b_c"
    assert device_id_of("") is None and device_id_of("y" * 65) is None


def test_shelly_gen2_notify_status_and_event() -> None:
    d = decoder()
    points = d.decode("shellypro4pm-f008d1d8b8b8/events/rpc", doc.SHELLY_NOTIFY_STATUS, NOW)
    assert fields(points) == {"switch:0.id": (0.0, None), "switch:0.output": (True, None)}
    assert {p.ts_ns for p in points} == {1631266595_430_000_000}  # type: ignore[union-attr]
    power = d.decode("shellyplus1pm-a8032ab636ec/events/rpc", doc.SHELLY_NOTIFY_POWER, NOW)
    got = fields(power)
    assert got["switch:0.apower"] == (8.9, "W") and got["switch:0.aenergy.total"] == (6.532, "Wh")
    assert not any("by_minute" in k for k in got)  # arrays are not fields
    with pytest.raises(Rejected) as e:
        d.decode("shellypro4pm-f008d1d8b8b8/events/rpc", doc.SHELLY_NOTIFY_EVENT, NOW)
    assert e.value.reason is Reason.NO_FIELDS and "NotifyEvent" in e.value.detail


def test_esphome_bare_values_and_status() -> None:
    d = decoder()
    assert fields(d.decode("livingroom/sensor/temperature/state", doc.ESPHOME_SENSOR, NOW)) == {
        "temperature": (21.5, None)
    }
    assert fields(d.decode("livingroom/binary_sensor/motion/state", doc.ESPHOME_BINARY, NOW)) == {
        "motion": (True, None)
    }
    assert d.decode("livingroom/status", doc.ESPHOME_STATUS, NOW) == StatusChange("livingroom", True, NOW / 1e9)
    with pytest.raises(Rejected) as e:  # a sensor without a reading publishes nan
        d.decode("livingroom/sensor/temperature/state", b"nan", NOW)
    assert e.value.reason is Reason.NON_FINITE


def test_ttn_v3_uplink_readings_and_best_gateway() -> None:
    d = decoder()
    topic = "v3/app1@ttn/devices/dev1/up"
    points = d.decode(topic, doc.TTN_UPLINK, NOW)
    assert isinstance(points, list)
    ts = 1581520507_513712812
    assert sorted((p.measurement, tuple(p.fields.items()), p.tags.get("unit"), p.ts_ns) for p in points) == [
        ("device_metrics", (("rssi", -35.0), ("snr", 5.2)), None, ts),  # gtw1 heard it best
        ("sensor_readings", (("temperature", 21.5), ("battery.voltage", 3.6)), None, ts),
    ]
    assert fields(points)["rssi"] == (-35.0, "dBm") and fields(points)["snr"] == (5.2, "dB")  # declared
    assert {p.device_id for p in points} == {"dev1"}
    assert d.topics.gateway_of(topic) == "app1_ttn"
    with pytest.raises(Rejected) as e:
        d.decode(topic, b'{"end_device_ids":{"device_id":"dev1"},"uplink_message":{"f_port":1}}', NOW)
    assert e.value.reason is Reason.NO_FIELDS


def test_mapped_names_still_go_through_the_allow_lists() -> None:
    d = decoder()
    with pytest.raises(Rejected) as e:
        d.decode("zigbee2mqtt/plug", b'{"device_id": 1}', NOW)
    assert e.value.reason is Reason.RESERVED_NAME
    with pytest.raises(Rejected) as e:
        d.decode("zigbee2mqtt/plug", b'{"temp\\u00e9rature": 1}', NOW)
    assert e.value.reason is Reason.INVALID_NAME
    with pytest.raises(Rejected) as e:  # nothing numeric: a dead letter with the reason, not silence
        d.decode("zigbee2mqtt/plug", b'{"state": "ON"}', NOW)
    assert e.value.reason is Reason.NO_FIELDS
    with pytest.raises(Rejected) as e:
        d.decode("tele/t/SENSOR", b'{"Time":"2099-01-01T00:00:00","X":{"Power":1}}', NOW)
    assert e.value.reason is Reason.FUTURE_TIMESTAMP


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[mapping]]\ntopic = "a/+/env"\n', "has no {device} level"),
        ('[[mapping]]\ntopic = "a/{device}"\nfieldz = {x = "y"}\n', "unknown key 'fieldz'"),
        ('[[mapping]]\npreset = "tasmota"\nzone = "UTC"\n', "unknown key 'zone'"),
        ('[[mapping]]\npreset = "tasmota"\ntimezone = "Mars/Olympus"\n', "not an IANA time zone"),
        ('[[mapping]]\npreset = "nope"\n', "unknown preset 'nope'"),
        ('[[mapping]]\ntopic = "a/{device}"\nunits = {x = "°C"}\nfields = {x = "x"}\n', "unit '°C'"),
        ('[[mapping]]\ntopic = "a/{device}"\nfields = {time = "t"}\n', "reserved"),
        ('[[mapping]]\ntopic = "a/{device}/#/b"\n', "'#' must be the last level"),
        ('[[mapping]]\ntopic = "a/{device}"\ntime = {path = "t", format = "weird"}\n', "time format 'weird'"),
        ("contract = false\n", "nothing would be ingested"),
    ],
)
def test_unusable_files_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(MappingError, match=message.replace("{", r"\{").replace("(", r"\(")):
        parse_mappings(text)


def test_overlaps_name_the_winner() -> None:
    rules = parse_mappings(
        '[[mapping]]\ntopic = "site/{device}/env"\n\n[[mapping]]\ntopic = "site/+/{device}"\n\n'
        '[[mapping]]\npreset = "contract"\nroot = "site"\n'
    )
    found = overlaps(rules)
    assert [(o.winner, o.loser, o.example) for o in found] == [
        ("mapping 1 (site/{device}/env)", "mapping 2 (site/+/{device})", "site/x/env"),
        ("mapping 1 (site/{device}/env)", "the built-in contract", "site/x/env"),
        ("mapping 2 (site/+/{device})", "the built-in contract", "site/x/x"),
    ]
    d = Decoder(topics=Topics(rules))
    assert {p.device_id for p in d.decode("site/a/env", b'{"v": 1}', NOW)} == {"a"}  # type: ignore[union-attr]
    assert not overlaps(parse_mappings(doc.ISSUE_FILE))


def test_contract_placed_first_takes_its_topics() -> None:
    rules = parse_mappings('[[mapping]]\npreset = "contract"\n\n[[mapping]]\ntopic = "devices/{device}/env/x"\n')
    assert isinstance(rules[0], ContractTopics) and isinstance(rules[1], MappingRule) and len(rules) == 2
    with pytest.raises(Rejected) as e:
        Decoder(topics=Topics(rules)).decode("devices/a/env/x", b'{"v": 1}', NOW)
    assert e.value.reason is Reason.BAD_TOPIC  # the contract, first, decides


def test_the_daemon_subscribes_to_every_rule(tmp_path: Path) -> None:
    f = tmp_path / "m.toml"
    f.write_text(doc.ISSUE_FILE)
    s = Settings(mappings=f, share_group="g")
    from iot.service import build_topics

    opts = session_options(parse_broker_url("mqtt://127.0.0.1:1883"), s, build_topics(s).filters())
    assert [f for f, _ in opts.subscriptions] == [
        "$share/g/tele/+/SENSOR",
        "$share/g/tele/+/STATE",
        "$share/g/tele/+/LWT",
        "$share/g/zigbee2mqtt/+",
        "$share/g/zigbee2mqtt/+/availability",
        "$share/g/plant/+/+/env",
        "$share/g/devices/#",
    ]
    plain = session_options(parse_broker_url("mqtt://127.0.0.1:1883"), Settings())
    assert plain.subscriptions == [("devices/#", 1)]


def test_cli_check_and_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "m.toml"
    f.write_text(doc.ALL_PRESETS)
    r = run_iot(monkeypatch, capsys, "mappings", "check", str(f))
    assert r.code == 0, r.err
    assert "tasmota SENSOR: subscribes tele/+/SENSOR" in r.out
    assert "overlap: zigbee2mqtt device and esphome status both take e.g. 'zigbee2mqtt/status'" in r.out
    assert "zigbee2mqtt device wins (first in file)" in r.out

    r = run_iot(
        monkeypatch,
        capsys,
        "mappings",
        "test",
        str(f),
        "--topic",
        "tele/plug1/SENSOR",
        "--payload",
        doc.TASMOTA_SENSOR.decode(),
    )
    assert r.code == 0, r.err
    out = r.json()
    assert out["device"] == "plug1" and out["kind"] == "telemetry" and out["gateway"] is None
    [reading] = out["readings"]
    assert reading["measurement"] == "sensor_readings" and reading["time"] == "2020-12-31T23:00:00.000Z"
    assert reading["fields"]["ENERGY.Power"] == 12.0 and reading["units"]["ENERGY.Power"] == "W"
    assert reading["unit_as"]["ENERGY.Power"] == "declared" and "ENERGY.Factor" not in reading["unit_as"]

    fahrenheit = '{"Time":"2021-01-01T00:00:00","AM2301":{"Temperature":70.9,"Humidity":53.4},"TempUnit":"F"}'
    r = run_iot(
        monkeypatch, capsys, "mappings", "test", str(f), "--topic", "tele/plug1/SENSOR", "--payload", fahrenheit
    )
    assert r.code == 0, r.err
    [reading] = r.json()["readings"]
    assert reading["units"] == {"AM2301.Temperature": "Far", "AM2301.Humidity": "%RH"}
    assert reading["unit_as"] == {"AM2301.Temperature": "tag", "AM2301.Humidity": "declared"}

    r = run_iot(
        monkeypatch,
        capsys,
        "mappings",
        "test",
        str(f),
        "--topic",
        "zigbee2mqtt/lamp/availability",
        "--payload",
        '{"state":"online"}',
    )
    assert r.code == 0 and r.json()["online"] is True and r.json()["gateway"] == "zigbee2mqtt"

    r = run_iot(monkeypatch, capsys, "mappings", "test", str(f), "--topic", "plant/a/p1/env", "--payload", '{"x": 1}')
    assert r.code == 1
    assert r.json()["dead_letter"] == "no_fields" and r.json()["device"] == "p1"

    bad = tmp_path / "bad.toml"
    bad.write_text('[[mapping]]\ntopic = "a/+/env"\n')
    for argv in (("check", str(bad)), ("test", str(bad), "--topic", "a", "--payload", "1")):
        r = run_iot(monkeypatch, capsys, "mappings", *argv)
        assert r.code == 2 and r.err.count("\n") == 1 and "has no {device} level" in r.err, r.err
    r = run_iot(monkeypatch, capsys, "mappings", "check", str(tmp_path / "missing.toml"))
    assert r.code == 2 and "cannot read mappings file" in r.err and "Traceback" not in r.err


def test_ingest_run_refuses_a_bad_file_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[mapping]]\npreset = "tasmota"\ntimezone = 3\n')
    r = run_iot(monkeypatch, capsys, "ingest", "run", "--mappings", str(bad))
    assert r.code == 2 and r.err.count("\n") == 1 and "timezone" in r.err, r.err


def test_contract_sources_carry_no_codec() -> None:
    assert Topics.contract().source("devices/d/telemetry").codec is None
    rule = parse_mappings(doc.ISSUE_FILE)[0]
    src = Topics([rule]).source("tele/d/SENSOR")
    assert src.codec is not None and src.kind is Kind.TELEMETRY
