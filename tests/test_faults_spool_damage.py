"""A damaged spool loses nothing silently. A real daemon spools a fleet's readings (InfluxDB
unreachable) and stops; each test copies that spool, damages the real segment file (one byte
flipped in a middle record, the last record cut short, another destination's segment, empty
segments), and a daemon on the same spool replays it into a real influxd 1.x: exactly the intact
records' points arrive, the bad bytes sit in ``quarantine/`` with a reason, and the daemon says
so (ERROR line, ``iot_spool_corrupt_records_total``, ``/healthz`` degraded, ``iot status`` exit 1)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.model import MEASUREMENTS, Point
from ingest.writing.spool_records import decode
from iot.status import fetch_status
from simulators.manifest import Manifest
from tests.daemon_proc import DaemonProcess
from tests.faultkit import Counts, Pipeline, expected_readings, metric, stored_readings
from tests.servers import Mosquitto, Postgres, free_port, wait_for

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.influxd]

PRODUCER = "spooldmg"
PREFIX = f"{PRODUCER}-"
KIND_OF = {m: k.value for k, m in MEASUREMENTS.items()}


@dataclass(frozen=True)
class Spooled:
    """The producer's spool directory (all four destinations) and what it holds."""

    spool: Path
    manifest: Manifest

    @property
    def segment(self) -> Path:
        (seg,) = sorted((self.spool / "timeseries").glob("*.seg"))
        return seg


def frames(data: bytes) -> list[bytes]:
    """Each record frame (header and data) of a segment, read with the on-disk framing."""
    out, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack_from("<I", data, pos)
        out.append(data[pos : pos + 8 + length])
        pos += 8 + length
    assert pos == len(data)
    return out


def readings_in(records: list[bytes]) -> Counts:
    """Field values per device and kind in these frames, counted as ``stored_readings`` counts them."""
    out: Counts = {}
    for frame in records:
        items, _, _ = decode(frame[8:])
        for p in items:
            assert isinstance(p, Point)
            row = out.setdefault(p.device_id, {k: 0 for k in ("telemetry", "metrics", "events")})
            row[KIND_OF[p.measurement]] += sum(1 for v in p.fields.values() if v is not None)
    return out


@pytest.fixture(scope="module")
def spooled(
    tmp_path_factory: pytest.TempPathFactory, mosquitto_server: Mosquitto, postgres_server: Postgres
) -> Iterator[Spooled]:
    workdir = tmp_path_factory.mktemp("spooldamage")
    nowhere = f"influxdb1://127.0.0.1:{free_port()}/nowhere"  # nothing listens: every point is spooled
    registry = postgres_server.create_database("t_" + uuid.uuid4().hex[:12])
    pipe = Pipeline(PRODUCER, workdir, mosquitto_server.url, nowhere, registry)
    daemon = pipe.daemon(IOT_BATCH_SIZE="20").start()
    try:
        manifest = pipe.publish(pipe.fleet(devices=3, rate=0, count=60, seed=16))
        wait_for(
            lambda: (
                metric(m := daemon.metrics(), "iot_messages_acked_total") >= manifest.sent
                and metric(m, "iot_unacked_messages") == 0
            ),
            60,
            "every message spooled or stored, and acknowledged",
        )
    finally:
        assert daemon.terminate() == 0
    found = Spooled(pipe.data_dir / "spool", manifest)
    records = frames(found.segment.read_bytes())
    assert len(records) >= 6, len(records)
    assert readings_in(records) == expected_readings(manifest)  # the spool holds every reading, nothing else
    yield found


@dataclass
class Replayed:
    daemon: DaemonProcess
    spool: Path
    health: dict[str, object]
    metrics: dict[str, float]
    status: subprocess.CompletedProcess[str]

    def quarantine(self, dest: str) -> list[tuple[bytes, dict[str, object]]]:
        q = self.spool / dest / "quarantine"
        return [(p.read_bytes(), json.loads(p.with_suffix(".reason").read_text())) for p in sorted(q.glob("*.bad"))]


def replay(
    name: str,
    spooled: Spooled,
    tmp_path: Path,
    broker: str,
    influx: str,
    registry: str,
    damage: Callable[[Path], None],
    corrupt: dict[tuple[str, str], float] | None = None,
) -> Replayed:
    """Copy the spool, damage it, replay it with a daemon on a fresh database until every spool
    is empty and ``iot_spool_corrupt_records_total`` is ``corrupt`` ((dest, reason): records)."""
    pipe = Pipeline(name, tmp_path, broker, influx, registry)
    spool = pipe.data_dir / "spool"
    shutil.copytree(spooled.spool, spool)
    damage(spool)
    daemon = pipe.daemon().start()
    try:

        def done() -> bool:
            m = daemon.metrics()
            counted = {k: v for k, v in m.items() if k.startswith("iot_spool_corrupt_records_total") and v}
            want = {
                f'iot_spool_corrupt_records_total{{dest="{d}",reason="{r}"}}': n
                for (d, r), n in (corrupt or {}).items()
            }
            return counted == want and all(
                metric(m, "iot_spool_batches", dest=d) == 0 for d in ("timeseries", "registry")
            )

        wait_for(done, 60, f"the spools to replay and {corrupt or 'no'} records counted as set aside")
        st = fetch_status(f"http://127.0.0.1:{daemon.port}")
        status = subprocess.run(
            [sys.executable, "-m", "iot", "status", "--url", f"http://127.0.0.1:{daemon.port}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        assert daemon.terminate() == 0
    return Replayed(daemon, spool, st["health"], st["metrics"], status)


def flip_a_byte_in_the_third_record(spool: Path) -> None:
    seg = next((spool / "timeseries").glob("*.seg"))
    data = bytearray(seg.read_bytes())
    start = sum(len(f) for f in frames(bytes(data))[:2])
    data[start + 8 + 40] ^= 0x01  # inside the third record's JSON
    seg.write_bytes(bytes(data))


def test_a_flipped_byte_loses_exactly_its_record_and_says_so(
    spooled: Spooled, tmp_path: Path, mosquitto_server: Mosquitto, influxdb1_url: str, postgres_url: str
) -> None:
    original = frames(spooled.segment.read_bytes())
    r = replay(
        "spoolflip",
        spooled,
        tmp_path,
        mosquitto_server.url,
        influxdb1_url,
        postgres_url,
        flip_a_byte_in_the_third_record,
        {("timeseries", "damaged"): 1},
    )
    expected = readings_in(original[:2] + original[3:])
    assert stored_readings(influxdb1_url, PREFIX) == expected  # every intact record, before and after it
    ((kept, reason),) = r.quarantine("timeseries")
    assert len(kept) == len(original[2]) and kept != original[2]  # the record's bytes, as found
    assert sum(a != b for a, b in zip(kept, original[2], strict=True)) == 1
    assert reason["kind"] == "damaged" and reason["segment"] == spooled.segment.name
    assert reason["offset"] == len(original[0]) + len(original[1])
    assert metric(r.metrics, "iot_spool_corrupt_records_total", dest="timeseries", reason="damaged") == 1
    assert metric(r.metrics, "iot_spool_quarantined", dest="timeseries") == 1
    assert_reported(r, "timeseries")


def assert_reported(r: Replayed, dest: str) -> None:
    """ERROR in the log, degraded with the reason in /healthz and ``iot status``."""
    errors = [line for line in r.daemon.output().splitlines() if "ERROR" in line and "set aside" in line]
    assert errors and all(f"{dest} spool" in line for line in errors), r.daemon.output()[-3000:]
    assert r.health["status"] == "degraded"
    stores = r.health["stores"]
    assert isinstance(stores, dict)
    assert stores[dest]["state"] == "needs_operator" and stores[dest]["up"] is True
    assert "quarantine" in stores[dest]["reason"]
    assert r.status.returncode == 1, r.status.stdout + r.status.stderr
    assert f"degraded: {dest}: spool quarantine holds" in r.status.stdout


def test_a_truncated_last_record_is_kept_aside_and_reported(
    spooled: Spooled, tmp_path: Path, mosquitto_server: Mosquitto, influxdb1_url: str, postgres_url: str
) -> None:
    data = spooled.segment.read_bytes()
    original = frames(data)

    def truncate(spool: Path) -> None:
        (spool / "timeseries" / spooled.segment.name).write_bytes(data[:-25])

    r = replay(
        "spooltrunc",
        spooled,
        tmp_path,
        mosquitto_server.url,
        influxdb1_url,
        postgres_url,
        truncate,
        {("timeseries", "truncated"): 1},
    )
    assert stored_readings(influxdb1_url, PREFIX) == readings_in(original[:-1])
    ((kept, reason),) = r.quarantine("timeseries")
    assert kept == original[-1][:-25]
    assert reason["kind"] == "truncated"
    assert metric(r.metrics, "iot_spool_corrupt_records_total", dest="timeseries", reason="truncated") == 1
    assert_reported(r, "timeseries")


def test_a_segment_of_another_destination_is_refused_and_set_aside(
    spooled: Spooled, tmp_path: Path, mosquitto_server: Mosquitto, influxdb1_url: str, postgres_url: str
) -> None:
    """A time-series segment in the registry's spool: the registry writer sets it aside whole
    (it used to retry it for ever), the time-series spool replays every reading once."""
    data = spooled.segment.read_bytes()

    def misplace(spool: Path) -> None:
        (spool / "registry").mkdir(exist_ok=True)
        (spool / "registry" / "00000001.seg").write_bytes(data)

    n = len(frames(data))
    r = replay(
        "spoolforeign",
        spooled,
        tmp_path,
        mosquitto_server.url,
        influxdb1_url,
        postgres_url,
        misplace,
        {("registry", "foreign"): n},
    )
    assert stored_readings(influxdb1_url, PREFIX) == expected_readings(spooled.manifest)
    ((kept, reason),) = r.quarantine("registry")
    assert kept == data and reason["kind"] == "foreign" and reason["records"] == len(frames(data))
    assert r.quarantine("timeseries") == []
    assert metric(r.metrics, "iot_spool_corrupt_records_total", dest="registry", reason="foreign") == n
    registry_errors = {k: v for k, v in r.metrics.items() if k.startswith('iot_store_errors_total{dest="registry"')}
    assert registry_errors == {}  # never handed to the registry store
    assert_reported(r, "registry")


def test_zero_length_segments_are_dropped_quietly(
    spooled: Spooled, tmp_path: Path, mosquitto_server: Mosquitto, influxdb1_url: str, postgres_url: str
) -> None:
    """An empty segment (a crash right after creating one) holds nothing to lose: no quarantine, healthy."""

    def empty_segments(spool: Path) -> None:
        (spool / "timeseries" / "00000000.seg").write_bytes(b"")
        (spool / "timeseries" / "00000099.seg").write_bytes(b"")
        (spool / "documents" / "00000001.seg").write_bytes(b"")

    r = replay("spoolempty", spooled, tmp_path, mosquitto_server.url, influxdb1_url, postgres_url, empty_segments)
    assert stored_readings(influxdb1_url, PREFIX) == expected_readings(spooled.manifest)
    assert r.quarantine("timeseries") == r.quarantine("documents") == []
    assert list((r.spool / "timeseries").glob("*.seg")) == list((r.spool / "documents").glob("*.seg")) == []
    assert r.health["status"] == "ok", r.health
    assert r.status.returncode == 0
