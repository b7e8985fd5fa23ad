"""Shared pieces of the fault-injection tests: a pipeline (daemon subprocess wired to real servers),
a fleet publishing in the background, and exact stored-vs-sent counts read from the servers."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.model import COLLECTIONS, MEASUREMENTS, Kind
from ingest.stores import open_documents
from registry.db import make_engine, migrate
from registry.deadletters import DeadLetterStore
from simulators.fleet import FleetConfig, generate
from simulators.manifest import Manifest
from simulators.runner import run_fleet
from tests.daemon_proc import DaemonProcess
from tests.servers import wait_for

TS_KINDS = (Kind.TELEMETRY, Kind.METRICS, Kind.EVENTS)
DOC_KINDS = (Kind.CONFIG, Kind.FIRMWARE, Kind.MAINTENANCE)
Counts = dict[str, dict[str, int]]


def influx_parts(url: str) -> tuple[str, str]:
    """``influxdb1://host:port/db`` → (http base, db)."""
    u = urllib.parse.urlsplit(url)
    return f"http://{u.hostname}:{u.port}", u.path.strip("/")


def influx_query(url: str, q: str) -> dict[str, Any] | None:
    """One InfluxQL query against the database of ``url``; None while the server is unreachable."""
    base, db = influx_parts(url)
    data = urllib.parse.urlencode({"q": q, "db": db, "epoch": "ns"}).encode()
    try:
        with urllib.request.urlopen(base + "/query", data=data, timeout=10) as r:
            result: dict[str, Any] = json.loads(r.read())
            return result
    except (urllib.error.URLError, OSError):
        return None


def stored_readings(url: str, prefix: str) -> Counts | None:
    """Field values stored per device and kind (one point's fields count once each: idempotent
    overwrites of a redelivered point leave the count unchanged)."""
    out: Counts = {}
    for kind in TS_KINDS:
        res = influx_query(
            url, f'SELECT count(*) FROM "{MEASUREMENTS[kind]}" WHERE device_id =~ /^{prefix}/ GROUP BY device_id'
        )
        if res is None:
            return None
        for series in res["results"][0].get("series", []):
            device = series["tags"]["device_id"]
            n = sum(v for row in series["values"] for v in row[1:] if v)
            out.setdefault(device, {k.value: 0 for k in TS_KINDS})[kind.value] = n
    return out


def _summed(manifests: tuple[Manifest, ...], kinds: Any, what: str) -> Counts:
    out: Counts = {}
    for m in manifests:
        for device, entry in m.devices.items():
            row = out.setdefault(device, {k.value: 0 for k in kinds})
            tally = getattr(entry.tally, what)
            for k in kinds:
                row[k.value] += tally[k.value]
    return out


def expected_readings(*manifests: Manifest) -> Counts:
    out = _summed(manifests, TS_KINDS, "readings")
    return {d: row for d, row in out.items() if any(row.values())}


def expected_documents(*manifests: Manifest) -> Counts:
    return _summed(manifests, DOC_KINDS, "documents")


def expected_letters(config: FleetConfig, *manifests: Manifest) -> int:
    """Dead letters the malformed messages the broker acknowledged must leave: one per distinct
    (topic, payload). Dead letters are idempotent by content, so a device sending the very same
    bad message twice (``{}`` is one) leaves one row, exactly as a redelivery does."""
    acked = {m["id"] for manifest in manifests for m in manifest.malformed}
    return len(
        {
            (msg.topic, msg.payload)
            for msg in generate(config)
            if msg.malformed is not None and msg.malformed.id in acked
        }
    )


def stored_documents(data_dir: Path, devices: list[str]) -> Counts:
    """Documents per device and kind in the daemon's embedded store (read after it has exited)."""
    docs = open_documents("embedded", data_dir=data_dir)
    docs.connect()
    try:
        return {d: {k.value: docs.count(COLLECTIONS[k], d) for k in DOC_KINDS} for d in devices}
    finally:
        docs.close()


def dead_letters(registry_url: str) -> DeadLetterStore:
    return DeadLetterStore(make_engine(registry_url))


def urllib_broker(url: str) -> tuple[str, int]:
    """``mqtt://host:port`` → (host, port)."""
    u = urllib.parse.urlsplit(url)
    assert u.hostname and u.port
    return u.hostname, u.port


def publish_raw(broker_url: str, messages: list[tuple[str, bytes]]) -> None:
    """Publish hand-made messages at QoS 1 and wait for every PUBACK."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    host, port = urllib_broker(broker_url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect(host, port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(10)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def metric(values: dict[str, float], name: str, **labels: str) -> float:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return values.get(f"{name}{{{inner}}}" if inner else name, 0.0)


def metric_sum(values: dict[str, float], name: str) -> float:
    return sum(v for k, v in values.items() if k == name or k.startswith(name + "{"))


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of a process now, or its peak with ``field="VmHWM"``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


@dataclass
class Pipeline:
    """One namespaced pipeline: topic root, client id and device prefix unique to a test."""

    name: str
    workdir: Path
    broker_url: str
    timeseries_url: str
    registry_url: str
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        migrate(self.registry_url)

    @property
    def topic_root(self) -> str:
        return f"f{self.name}"

    @property
    def prefix(self) -> str:
        return f"{self.name}-"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "daemon" / "data"

    def daemon(self, **env: str) -> DaemonProcess:
        """A daemon process (not started); every one of a pipeline shares data dir and client id."""
        return DaemonProcess(
            self.workdir / "daemon",
            {
                "IOT_BROKER_URL": self.broker_url,
                "IOT_TIMESERIES_URL": self.timeseries_url,
                "IOT_REGISTRY_URL": self.registry_url,
                "IOT_DOCUMENTS_URL": "embedded",
                "IOT_CLIENT_ID": f"ingest-{self.name}",
                "IOT_TOPIC_ROOT": self.topic_root,
                **self.env,
                **env,
            },
        )

    def fleet(self, **kw: Any) -> FleetConfig:
        return FleetConfig(**{"topic_root": self.topic_root, "id_prefix": self.prefix, **kw})

    def publish(self, config: FleetConfig) -> Manifest:
        manifest = run_fleet(config, self.broker_url)
        assert manifest.unacked == 0 and not manifest.lost, manifest.as_json()
        return manifest

    def readings(self) -> Counts | None:
        return stored_readings(self.timeseries_url, self.prefix)

    def wait_stored(self, expected: Counts, letters: int, timeout: float, daemon: DaemonProcess) -> None:
        """Until every reading and at least ``letters`` dead letters are stored (the daemon must live)."""
        store = dead_letters(self.registry_url)
        last: list[Any] = [None, None]

        def done() -> bool:
            daemon._alive()
            last[0] = self.readings()
            if last[0] != expected:
                return False
            last[1] = store.count()
            return bool(last[1] >= letters)

        try:
            wait_for(done, timeout, "every reading and dead letter to be stored", interval=0.5)
        except TimeoutError as e:
            raise AssertionError(
                f"{e}: readings {last[0]} != {expected} or letters {last[1]} < {letters}\n"
                f"daemon log tail:\n{daemon.output()[-3000:]}"
            ) from None
        finally:
            store.engine.dispose()


class Background(threading.Thread):
    """``run_fleet`` on a thread; ``result()`` re-raises what it raised."""

    def __init__(self, fn: Callable[[], Manifest]) -> None:
        super().__init__(daemon=True, name="fleet")
        self._fn = fn
        self._manifest: Manifest | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._manifest = self._fn()
        except BaseException as e:  # handed to the test thread
            self._error = e

    def result(self, timeout: float = 180) -> Manifest:
        self.join(timeout)
        if self.is_alive():
            raise TimeoutError("the fleet did not finish")
        if self._error is not None:
            raise self._error
        assert self._manifest is not None
        return self._manifest


def assert_stored_exactly(pipe: Pipeline, manifest: Manifest, expected: Any, letters: int) -> None:
    """Every reading, document and dead letter of the manifest is stored, and nothing more."""
    assert pipe.readings() == expected
    store = dead_letters(pipe.registry_url)
    try:
        assert store.count() == letters
    finally:
        store.engine.dispose()
    assert stored_documents(pipe.data_dir, list(manifest.devices)) == expected_documents(manifest)
