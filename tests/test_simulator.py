"""The device simulator: pure generation (determinism, kinds, faults, SenML, decodability) and
real MQTT runs against mosquitto (manifest == what a subscriber received, last will)."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import threading
import uuid
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core.model import Point, Rejected
from ingest.decoding.decode import Decoder
from simulators.faults import ID_FREE, MALFORMATIONS
from simulators.fleet import KINDS, PRELUDE, FleetConfig, Message, device_stream, generate, plan
from simulators.manifest import Manifest
from simulators.runner import Progress, SimError, parse_broker_url, run_fleet
from tests.servers import Mosquitto, wait_for

START_MS = 1_764_028_800_000  # 2025-11-25T00:00:00Z
NOW_NS = START_MS * 1_000_000 + 3600 * 10**9  # "arrival": an hour later, nothing in the future
SENML_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-:./_]*")


def cfg(**kw: object) -> FleetConfig:
    base = {"devices": 4, "count": 60, "seed": 7, "start_ms": START_MS, "rate": 10.0}
    return FleetConfig(**(base | kw))  # type: ignore[arg-type]


def wire(config: FleetConfig) -> list[tuple[str, bytes]]:
    return [(m.topic, m.payload) for m in generate(config)]


# -- pure generation ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "senml"])
def test_same_seed_same_bytes_other_seed_differs(fmt: str) -> None:
    c = cfg(format=fmt, pack=10, malformed=0.1, duplicates=0.1, offline=0.5)
    first = wire(c)
    assert first == wire(c)
    assert len(first) >= 4 * 60
    assert wire(replace(c, seed=8)) != first


def test_every_kind_from_every_device_in_a_short_run() -> None:
    c = cfg(count=len(PRELUDE))
    kinds: dict[str, set[str]] = defaultdict(set)
    for m in generate(c):
        kinds[m.device_id].add(m.kind)
        assert m.topic == f"devices/{m.device_id}/{m.kind}"
    assert set(kinds) == {s.device_id for s in plan(c)}
    assert all(k == set(KINDS) for k in kinds.values())
    profiles = {s.profile for s in plan(c)}
    assert profiles == {"thermostat", "vibration", "energy", "air_quality"}


@pytest.mark.parametrize("rate", [10.0, 1000.0, 5000.0, 0.0])
def test_time_series_ts_strictly_increase_per_device_and_kind(rate: float) -> None:
    c = cfg(rate=rate, count=400, devices=2)
    last: dict[tuple[str, str], int] = {}
    for m in generate(c):
        if m.kind in ("telemetry", "metrics", "events"):
            ts = json.loads(m.payload)["ts"]
            unit = 1_000_000 if c.ts_unit == "ms" else 1
            assert m.points[0][0] == ts * unit
            assert ts > last.get((m.device_id, m.kind), -1)
            last[m.device_id, m.kind] = ts
    assert c.ts_unit == ("ms" if 0 < rate <= 1000 else "ns")


def test_timestamps_follow_the_start_time() -> None:
    msgs = [m for m in generate(cfg(devices=1, count=20, rate=2.0)) if m.points]
    assert msgs[0].points[0][0] >= START_MS * 1_000_000
    assert msgs[-1].points[0][0] <= (START_MS + 10_000) * 1_000_000


def test_energy_meter_counter_never_decreases() -> None:
    c = cfg(devices=1, profiles=("energy",), count=2000)
    values = [json.loads(m.payload)["energy"] for m in generate(c) if m.kind == "telemetry"]
    assert len(values) > 1000
    assert all(b >= a for a, b in itertools.pairwise(values))
    assert values[-1] > values[0]


def test_spikes_raise_warning_or_error_events() -> None:
    c = cfg(devices=1, profiles=("vibration",), count=3000)
    levels = Counter(json.loads(m.payload)["level"] for m in generate(c) if m.kind == "events")
    assert levels["info"] > 0
    assert levels["warning"] + levels["error"] > 0


def test_malformed_fraction_and_each_payload_carries_its_id() -> None:
    c = cfg(count=1000, malformed=0.2)
    msgs = list(generate(c))
    bad = [m for m in msgs if m.malformed]
    assert 0.15 < len(bad) / len(msgs) < 0.25
    ids = [m.malformed.id for m in bad if m.malformed]
    assert len(set(ids)) == len(ids)
    assert {m.malformed.why for m in bad if m.malformed} == set(MALFORMATIONS)
    for m in bad:
        assert m.malformed is not None
        assert m.malformed.id.startswith(f"mf-{c.seed}-")
        if m.malformed.why in ID_FREE:
            assert not m.malformed.id_in_payload
        else:
            assert m.malformed.id.encode() in m.payload


def test_duplicates_are_identical_copies_right_after_the_original() -> None:
    msgs = list(generate(cfg(count=500, duplicates=0.1)))
    dups = [i for i, m in enumerate(msgs) if m.duplicate]
    assert 0.05 < len(dups) / len(msgs) < 0.15
    for i in dups:
        orig = msgs[i - 1]
        assert not orig.duplicate and orig.device_id == msgs[i].device_id
        assert (orig.topic, orig.payload) == (msgs[i].topic, msgs[i].payload)


def test_faults_leave_the_well_formed_content_unchanged() -> None:
    clean = {(m.device_id, m.slot): m.payload for m in generate(cfg())}
    faulty = [m for m in generate(cfg(malformed=0.3, duplicates=0.3)) if m.counted]
    assert len(faulty) < len(clean)
    assert all(clean[m.device_id, m.slot] == m.payload for m in faulty)


def test_senml_packs_follow_rfc_8428() -> None:
    c = cfg(format="senml", pack=12)
    packs = [m for m in generate(c) if m.kind in ("telemetry", "metrics")]
    assert packs
    for m in packs:
        records = json.loads(m.payload)
        assert isinstance(records, list) and records
        assert records[0]["bn"] == f"{m.device_id}:"
        assert isinstance(records[0]["bt"], int) and records[0]["bt"] >= 2**28
        assert len(records) == m.readings <= max(12, len(m.points[0][1]))
        for r in records:
            assert SENML_NAME.fullmatch(r["bn"] + r["n"] if "bn" in r else r["n"])
            assert sum(k in r for k in ("v", "vs", "vb", "vd")) == 1
            assert set(r) <= {"bn", "bt", "n", "u", "v", "vs", "vb", "t"}
    assert any(len(m.points) > 1 for m in packs)  # packs hold successive samples


def test_validate_rejects_bad_values() -> None:
    for bad in (
        {"devices": 0},
        {"profiles": ("toaster",)},
        {"malformed": 1.5},
        {"duplicates": -0.1},
        {"offline": 2.0},
        {"rate": -1.0},
        {"count": 0},
        {"format": "xml"},
        {"id_prefix": "bad prefix/"},
    ):
        with pytest.raises(ValueError):
            cfg(**bad).validate()
    with pytest.raises(ValueError, match="duration"):
        FleetConfig(count=None, duration=None).validate()


def test_broker_urls() -> None:
    a = parse_broker_url("mqtt://u%40x:p%3As@broker.local:1884")
    assert (a.host, a.port, a.tls, a.username, a.password) == ("broker.local", 1884, False, "u@x", "p:s")
    assert parse_broker_url("mqtts://h").port == 8883
    for bad in ("embedded", "http://h:1", "mqtt://"):
        with pytest.raises(ValueError):
            parse_broker_url(bad)


# -- the pipeline's decoder accepts exactly the well-formed messages -------------------------


def _merge(points: list[Point]) -> dict[int, dict[str, object]]:
    by_ts: dict[int, dict[str, object]] = defaultdict(dict)
    for p in points:
        by_ts[p.ts_ns].update(p.fields)
    return dict(by_ts)


@pytest.mark.parametrize("fmt", ["json", "senml"])
@pytest.mark.parametrize("rate", [10.0, 0.0])
def test_decoder_accepts_every_good_message_and_rejects_every_malformed(fmt: str, rate: float) -> None:
    c = cfg(format=fmt, pack=9, rate=rate, count=300, malformed=0.15, duplicates=0.05)
    decoder = Decoder()
    manifest = Manifest.start(c, plan(c))
    rejected = 0
    for m in generate(c):
        if m.malformed:
            with pytest.raises(Rejected):
                decoder.decode(m.topic, m.payload, NOW_NS)
            rejected += 1
            continue
        manifest.acked(m)
        out = decoder.decode(m.topic, m.payload, NOW_NS)
        if m.kind in ("telemetry", "metrics", "events"):
            assert isinstance(out, list)
            assert sum(len(p.fields) for p in out) == m.readings
            assert _merge(out) == {ts: dict(f) for ts, f in m.points}
    assert rejected > 0
    totals = manifest.totals.as_dict()
    assert sum(totals["readings"].values()) > 0
    assert len(manifest.samples) > 0


# -- real MQTT ---------------------------------------------------------------------------------


class Subscriber:
    """A paho client on devices/# at QoS 1 recording (topic, payload) for one device prefix."""

    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = f"devices/{prefix}"
        self.got: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        a = parse_broker_url(url)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("devices/#", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rc, p: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(a.host, a.port)
        self.client.loop_start()
        wait_for(self.subscribed.is_set, 10, "the subscription")

    def _on_message(self, c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.startswith(self.prefix):
            with self.lock:
                self.got.append((msg.topic, bytes(msg.payload)))

    def count(self) -> int:
        with self.lock:
            return len(self.got)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _expected_on_wire(config: FleetConfig, manifest: Manifest) -> dict[str, list[bytes]]:
    """Per device, the payloads the fleet published (offline devices: the first half)."""
    half = max(1, (config.slots or 0) // 2)
    out = {}
    for spec in plan(config):
        msgs: list[Message] = list(device_stream(config, spec))
        if spec.offline:
            msgs = [m for m in msgs if m.slot < half]
        out[spec.device_id] = [m.payload for m in msgs]
    return out


@pytest.mark.mosquitto
@pytest.mark.parametrize("fmt", ["json", "senml"])
def test_manifest_equals_what_a_subscriber_received(mosquitto_server: Mosquitto, fmt: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    c = cfg(
        devices=6, count=80, rate=0.0, id_prefix=prefix, format=fmt, pack=8, malformed=0.1, duplicates=0.1, offline=0.34
    )
    sub = Subscriber(mosquitto_server.url, prefix)
    try:
        manifest = run_fleet(c, mosquitto_server.url)
        wills = len(manifest.offline)
        expected = manifest.sent + wills
        wait_for(lambda: sub.count() >= expected, 30, f"{expected} messages at the subscriber")
        got = list(sub.got)
    finally:
        sub.close()
    assert len(got) == expected
    assert manifest.unacked == 0 and not manifest.lost
    assert sorted(manifest.offline) == sorted(s.device_id for s in plan(c) if s.offline)
    assert len(manifest.offline) == 2

    by_kind = Counter(t.rsplit("/", 1)[1] for t, _ in got)
    want = Counter(manifest.totals.messages)
    want.update(manifest.duplicates_by_kind)
    want.update(m["kind"] for m in manifest.malformed)
    want["status"] += wills
    assert +by_kind == +want

    per_device: dict[str, list[bytes]] = defaultdict(list)
    for t, p in got:
        per_device[t.split("/")[1]].append(p)
    for device_id, payloads in _expected_on_wire(c, manifest).items():
        entry = manifest.devices[device_id]
        tail = [b"offline"] if entry.offline else []
        assert per_device[device_id] == payloads + tail  # QoS 1 on one connection keeps order
        if entry.offline:
            assert b"offline" not in payloads
    raw = b"\n".join(p for _, p in got)
    for m in manifest.malformed:
        if m["id_in_payload"]:
            assert m["id"].encode() in raw
    assert manifest.duplicates > 0 and manifest.malformed


@pytest.mark.mosquitto
def test_run_by_duration_at_max_rate_is_counted_exactly(mosquitto_server: Mosquitto) -> None:
    prefix = f"d{uuid.uuid4().hex[:8]}-"
    c = FleetConfig(devices=3, rate=0.0, duration=0.5, id_prefix=prefix, seed=3)
    sub = Subscriber(mosquitto_server.url, prefix)
    try:
        manifest = run_fleet(c, mosquitto_server.url)
        total = sum(manifest.totals.messages.values())
        wait_for(lambda: sub.count() >= total, 30, f"{total} messages at the subscriber")
        got = Counter(t.rsplit("/", 1)[1] for t, _ in sub.got)
    finally:
        sub.close()
    assert total == manifest.sent > 3 * len(PRELUDE)
    assert +got == +Counter(manifest.totals.messages)


@pytest.mark.mosquitto
def test_unreachable_broker_is_a_sim_error(mosquitto: Mosquitto) -> None:
    url = mosquitto.url
    mosquitto.stop()
    with pytest.raises(SimError, match="cannot connect"):
        run_fleet(cfg(devices=2, count=3), url)


def _iot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "iot", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.mosquitto
def test_cli_run_writes_the_manifest(mosquitto_server: Mosquitto, tmp_path: Path) -> None:
    out = tmp_path / "manifest.json"
    prefix = f"c{uuid.uuid4().hex[:8]}-"
    done = _iot(
        "sim",
        "run",
        "--broker",
        mosquitto_server.url,
        "--devices",
        "3",
        "--count",
        "9",
        "--rate",
        "0",
        "--seed",
        "5",
        "--id-prefix",
        prefix,
        "--manifest",
        str(out),
        "--start",
        "2025-11-25T00:00:00Z",
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert data["seed"] == 5 and data["format"] == "json"
    assert sum(data["totals"]["messages"].values()) == 27
    assert set(data["devices"]) == {f"{prefix}{i:04d}" for i in range(3)}
    assert all(d["messages"]["status"] == 1 for d in data["devices"].values())


def test_cli_mistakes_are_one_line_with_exit_2() -> None:
    for args in (
        ["--profile", "toaster"],
        ["--malformed", "1.5"],
        ["--devices", "0"],
        ["--broker", "embedded"],
        ["--broker", "http://x:1"],
    ):
        done = _iot("sim", "run", "--count", "3", "--broker", "mqtt://127.0.0.1:1", *args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("error:")


@pytest.mark.mosquitto
def test_cli_unreachable_broker_exits_1(mosquitto: Mosquitto) -> None:
    url = mosquitto.url
    mosquitto.stop()
    done = _iot("sim", "run", "--broker", url, "--count", "3")
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot connect") and done.stderr.count("\n") == 1


@pytest.mark.mosquitto
def test_password_file_credentials(tmp_path: Path) -> None:
    pwfile = tmp_path / "passwd"
    secrets = {"pw-0000": "s3cret-a", "pw-0001": "s3cret-b"}
    pwfile.write_text("".join(f"{k}:{v}\n" for k, v in secrets.items()))
    subprocess.run(["mosquitto_passwd", "-U", str(pwfile)], check=True)
    server = Mosquitto(tmp_path / "m", extra_conf=f"allow_anonymous false\npassword_file {pwfile}\n").start()
    try:
        c = cfg(devices=2, count=10, rate=0.0, id_prefix="pw-")
        manifest = run_fleet(c, server.url, passwords=secrets)
        assert sum(manifest.totals.messages.values()) == 20
        with pytest.raises(SimError, match="refused"):
            run_fleet(c, server.url, passwords=secrets | {"pw-0001": "wrong"})
        with pytest.raises(SimError, match="no password"):
            run_fleet(c, server.url, passwords={"pw-0000": "s3cret-a"})
        pwjson = tmp_path / "pw.json"
        pwjson.write_text(json.dumps(secrets))
        out = tmp_path / "manifest.json"
        done = _iot(
            "sim",
            "run",
            "--broker",
            server.url,
            "--devices",
            "2",
            "--count",
            "5",
            "--password-file",
            str(pwjson),
            "--manifest",
            str(out),
            "--quiet",
            "--id-prefix",
            "pw-",
        )
        assert done.returncode == 0, done.stderr
        assert set(json.loads(out.read_text())["devices"]) == set(secrets)
        done = _iot(
            "sim",
            "run",
            "--broker",
            server.url,
            "--devices",
            "3",
            "--count",
            "5",
            "--password-file",
            str(pwjson),
            "--id-prefix",
            "pw-",
        )
        assert done.returncode == 2 and "no password for device pw-0002" in done.stderr
    finally:
        server.stop()


@pytest.mark.mosquitto
def test_a_frozen_broker_ends_the_run_with_unacknowledged_messages(mosquitto: Mosquitto) -> None:
    import signal

    acked = threading.Event()

    def progress(p: Progress) -> None:
        if p.acked >= 20 and not acked.is_set():
            assert mosquitto.proc is not None
            mosquitto.proc.send_signal(signal.SIGSTOP)
            acked.set()

    c = cfg(devices=2, count=100_000, rate=100.0)
    try:
        manifest = run_fleet(c, mosquitto.url, progress, ack_timeout=1.0)
    finally:
        if mosquitto.proc is not None:
            mosquitto.proc.send_signal(signal.SIGCONT)
    assert acked.is_set()
    assert manifest.unacked > 0
    assert 20 <= sum(manifest.totals.messages.values()) < manifest.sent


@pytest.mark.mosquitto
def test_a_killed_broker_marks_devices_lost(mosquitto: Mosquitto) -> None:
    def progress(p: Progress) -> None:
        if p.acked >= 20:
            mosquitto.kill()

    manifest = run_fleet(cfg(devices=3, count=100_000, rate=100.0), mosquitto.url, progress)
    assert sorted(manifest.lost) == [s.device_id for s in plan(cfg(devices=3))]
    assert sum(manifest.totals.messages.values()) >= 20
