"""The fixtures themselves: each real server answers."""

import psycopg
import pytest

from tests.servers import Influxd, Mosquitto, Postgres


@pytest.mark.postgres
def test_postgres_answers(postgres_server: Postgres, postgres_url: str) -> None:
    with psycopg.connect(postgres_url.replace("+psycopg", "")) as conn:
        assert conn.execute("select 1 + 1").fetchone() == (2,)


@pytest.mark.influxd
def test_influxd_answers(influxd_server: Influxd) -> None:
    influxd_server.create_database("probe")
    names = [v[0] for v in influxd_server.query("SHOW DATABASES")["results"][0]["series"][0]["values"]]
    assert "probe" in names


@pytest.mark.mosquitto
def test_mosquitto_round_trip(mosquitto_server: Mosquitto) -> None:
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    got = threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="probe-sub")
    sub.on_message = lambda c, u, m: got.set()
    sub.connect("127.0.0.1", mosquitto_server.port)
    sub.subscribe("probe", 1)
    sub.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="probe-pub")
    pub.connect("127.0.0.1", mosquitto_server.port)
    pub.loop_start()
    try:
        for _ in range(100):
            pub.publish("probe", b"x", qos=1).wait_for_publish(5)
            if got.wait(0.1):
                break
        assert got.is_set()
    finally:
        pub.loop_stop()
        sub.loop_stop()
