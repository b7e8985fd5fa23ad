"""Mapped devices end to end (issue 18): documented Tasmota, Zigbee2MQTT, Shelly Gen2, ESPHome and
The Things Stack payloads through real Mosquitto into real influxd 1.x and PostgreSQL, with exact
counts; what yields no reading is dead-lettered and acknowledged."""

from __future__ import annotations

from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from core.model import MEASUREMENTS, Kind
from ingest.stores import open_timeseries
from registry.db import make_engine, migrate
from registry.deadletters import DeadLetterStore
from registry.models import Device
from tests import preset_payloads as doc
from tests.daemon_proc import DaemonProcess
from tests.servers import Influxd, Mosquitto, wait_for

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.influxd]
TELEMETRY, METRICS = MEASUREMENTS[Kind.TELEMETRY], MEASUREMENTS[Kind.METRICS]


def publish_all(broker: Mosquitto, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        infos = [client.publish(t, p, qos=1) for t, p in messages]
        for info in infos:
            info.wait_for_publish(10)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def test_presets_are_stored_exactly(
    tmp_path: Path, mosquitto_server: Mosquitto, influxd_server: Influxd, influxdb1_url: str, postgres_url: str
) -> None:
    migrate(postgres_url)
    mappings = tmp_path / "mappings.toml"
    mappings.write_text(doc.ALL_PRESETS)
    daemon = DaemonProcess.on_root(
        tmp_path / "daemon",
        mosquitto_server.url,
        "e2emap",
        timeseries=influxdb1_url,
        registry=postgres_url,
        IOT_MAPPINGS=str(mappings),
    ).start()
    sensor = doc.TASMOTA_SENSOR.decode()
    shelly = doc.SHELLY_NOTIFY_STATUS.decode()
    messages: list[tuple[str, bytes]] = []
    for i in range(3):  # three readings per device, at three different times
        messages += [
            ("tele/tasmota_E2E/SENSOR", sensor.replace("00:00:00", f"00:00:0{i}").encode()),
            ("zigbee2mqtt/E2E Sensor", doc.Z2M_STATE),  # arrival time: three times
            ("shellypro4pm-e2e/events/rpc", shelly.replace("1631266595.43", f"163126659{i}.5").encode()),
            ("e2ehome/sensor/temperature/state", doc.ESPHOME_SENSOR),
            ("v3/app1@ttn/devices/e2e-dev1/up", doc.TTN_UPLINK.replace(b"07.513712812Z", f"0{i}.5Z".encode())),
        ]
    fahrenheit = b'{"Time":"2021-01-01T00:00:05","AM2301":{"Temperature":70.9,"Humidity":53.4,"DewPoint":52.9},'
    messages += [
        ("tele/tasmota_E2E/SENSOR", fahrenheit + b'"TempUnit":"F"}'),  # a unit the payload sends: a tag
        ("tele/tasmota_E2E/LWT", b"Online"),
        ("zigbee2mqtt/E2E Sensor/availability", doc.Z2M_AVAILABILITY_JSON),
        ("e2ehome/status", b"offline"),
        ("plant/a/e2e-pump/env", b'{"t":"2024-05-01T10:00:00Z","temp_c":21,"rh":40,"accel":{"x":0.1}}'),
        # dead letters: no reading in them, never left unacknowledged
        ("shellypro4pm-e2e/events/rpc", doc.SHELLY_NOTIFY_EVENT),
        ("plant/a/e2e-pump/env", b'{"t":"2024-05-01T10:00:01Z","nothing":1}'),
        ("e2ehome/sensor/temperature/state", b"nan"),
    ]
    expected = {  # field values stored (count(*) over the device's rows)
        ("tasmota_E2E", TELEMETRY): 3 * 9 + 3,
        ("E2E_Sensor", TELEMETRY): 3 * 6,
        ("shellypro4pm-e2e", TELEMETRY): 3 * 2,
        ("e2ehome", TELEMETRY): 3 * 1,
        ("e2e-dev1", TELEMETRY): 3 * 2,
        ("e2e-dev1", METRICS): 3 * 2,
        ("e2e-pump", TELEMETRY): 3,
    }
    ts = open_timeseries(influxdb1_url)
    ts.connect()
    engine = make_engine(postgres_url)
    letters = DeadLetterStore(engine)
    try:
        publish_all(mosquitto_server, messages)

        def stored() -> dict[tuple[str, str], int]:
            return {key: ts.count(key[1], key[0]) for key in expected}

        wait_for(lambda: stored() == expected and letters.count() >= 3, 60, "every mapped reading and dead letter")
        wait_for(lambda: daemon.metrics().get("iot_unacked_messages") == 0.0, 30, "every message acknowledged")
    finally:
        rc = daemon.terminate()
    assert rc == 0, daemon.output()[-3000:]
    assert stored() == expected
    assert sorted(letter.reason for letter in letters.list(limit=100)) == ["no_fields", "no_fields", "non_finite"]
    with engine.connect() as conn:
        online = dict(conn.execute(select(Device.id, Device.online)).all())
    engine.dispose()
    ts.close()
    assert online["tasmota_E2E"] is True and online["E2E_Sensor"] is True and online["e2ehome"] is False

    # declared units are not tags: each ENERGY message is one point (nine readings, six units), the
    # Fahrenheit readings keep their unit tag on their own point, and field_units holds the declared
    db = influxdb1_url.rsplit("/", 1)[1]
    result = influxd_server.query(f"SELECT * FROM {TELEMETRY} WHERE device_id = 'tasmota_E2E' GROUP BY *", db)
    series = {s["tags"].get("unit", ""): s for s in result["results"][0]["series"]}
    assert sorted(series) == ["", "Far"]
    plain, far = series[""], series["Far"]
    assert len(plain["values"]) == 4  # three ENERGY messages, the Fahrenheit message's humidity
    columns = far["columns"]
    [row] = [dict(zip(columns, v, strict=True)) for v in far["values"]]
    assert row["AM2301.Temperature"] == 70.9 and row["AM2301.DewPoint"] == 52.9 and row["AM2301.Humidity"] is None
    result = influxd_server.query(
        'SELECT last("unit") FROM field_units WHERE device_id = \'tasmota_E2E\' GROUP BY "measurement", "field"', db
    )
    units = {(s["tags"]["measurement"], s["tags"]["field"]): s["values"][0][1] for s in result["results"][0]["series"]}
    assert units == {
        **{(TELEMETRY, f"ENERGY.{k}"): u for k, u in (("Total", "kWh"), ("Yesterday", "kWh"), ("Today", "kWh"))},
        **{(TELEMETRY, f"ENERGY.{k}"): u for k, u in (("Power", "W"), ("ApparentPower", "VA"))},
        **{(TELEMETRY, f"ENERGY.{k}"): u for k, u in (("ReactivePower", "var"), ("Voltage", "V"), ("Current", "A"))},
        (TELEMETRY, "AM2301.Humidity"): "%RH",
    }
    result = influxd_server.query("SELECT count(\"unit\") FROM field_units WHERE device_id = 'e2e-dev1' GROUP BY *", db)
    assert {s["tags"]["field"] for s in result["results"][0]["series"]} == {"rssi", "snr"}  # The Things Stack's
