"""Burst publisher for the benchmarks: N telemetry messages at QoS 1 over one raw MQTT 3.1.1 socket.

    python bench/mqtt_pub.py --port P --n N [--devices 100] [--window 1000] [--pack 1] [--root devices]

Keeps at most ``--window`` unacknowledged PUBLISHes in flight (the project's packet codec encodes
them and parses the PUBACKs), so the broker, not this process, is the limit. Payload per message,
``ts`` unique and 1 µs apart: ``{"ts": <ns>, "temperature": x, "humidity": y}`` (``--fields 1``:
temperature only); with ``--pack K`` a SenML pack of K records instead (K readings per message);
``--shape tasmota|energy`` nine Tasmota ENERGY readings, as Tasmota sends them or as contract JSON;
``--shape sparkplug`` Sparkplug B: ``--nodes`` edge nodes sharing the devices, their NBIRTHs and
DBIRTHs first (QoS 1 here, so a persistent session queues them too), then N DDATA messages of
``--pack`` metrics by alias (Float, Double, Int32, Boolean), encoded with the project's encoder.
Prints one JSON line:
``{"n", "t0", "seconds", "rate"}`` (``n`` counts every PUBLISH, births too) with ``t0`` the epoch
time of the first publish. ``--rate R`` paces the publisher (message k goes out at ``t0 + k/R``)
for latency measurements.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.decoding.sparkplug.encode import MetricValue, encode
from ingest.decoding.sparkplug.proto import DataType
from ingest.mqtt import packets as pk

ENERGY = ("Total", "Yesterday", "Today", "Power", "ApparentPower", "ReactivePower", "Factor", "Voltage", "Current")


def energy(i: int, devices: int, base_ns: int, shape: str) -> tuple[str, bytes]:
    """Message ``i`` as a Tasmota plug's SENSOR (``tasmota``: nested ENERGY, local ``Time`` in whole
    seconds, read as UTC) or the same nine readings as the built-in contract's flat JSON (``energy``,
    ``ts`` in ms). A device's messages are one second apart, going back from ``base_ns``."""
    s = base_ns // 1_000_000_000 - i // devices - 1
    values = [round(0.003 + i % 7 / 1000, 3), 0.0, 0.003, 12 + i % 5, 20, 16, 0.6, 230 + i % 9, 0.085]
    if shape == "tasmota":
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s))
        body = {
            "Time": when,
            "ENERGY": {"TotalStartTime": "2020-12-31T10:38:40", **dict(zip(ENERGY, values, strict=True))},
        }
        return f"tele/plug{i % devices}/SENSOR", json.dumps(body).encode()
    flat = {"ts": s * 1000, **{f"ENERGY.{k}": v for k, v in zip(ENERGY, values, strict=True)}}
    return f"devices/plug{i % devices}/telemetry", json.dumps(flat).encode()


SPARKPLUG_TYPES = (DataType.FLOAT, DataType.DOUBLE, DataType.INT32, DataType.BOOLEAN)
BIRTH_AGE_MS = 86_400_000  # births a day before the data: a landing count of the last hour is the data's


def sparkplug_value(t: DataType, i: int, k: int) -> float | int | bool:
    if t is DataType.BOOLEAN:
        return (i + k) % 2 == 0
    if t is DataType.INT32:
        return (i + k) % 200 - 100
    return 20.0 + (i + k) % 100 / 10


def sparkplug(n: int, devices: int, nodes: int, metrics: int, base_ns: int) -> list[tuple[str, bytes]]:
    """Births, then ``n`` DDATA of ``metrics`` metrics by alias: device ``d`` is ``d{d}`` of edge node
    ``edge{d % nodes}`` in group ``bench``; each node's ``seq`` runs 0 (NBIRTH), +1 per message, mod 256.
    DDATA ``i`` is timed ``base - (n - i)`` ms: unique per device, so no point overwrites another.
    The births' values are null: they store no point, so the data fills the daemon's batches exactly
    as N single-reading messages do (a partial last batch would wait out the flush interval)."""
    base_ms = base_ns // 1_000_000
    types = [SPARKPLUG_TYPES[k % len(SPARKPLUG_TYPES)] for k in range(metrics)]
    seq = [0] * nodes
    out: list[tuple[str, bytes]] = []
    born = base_ms - BIRTH_AGE_MS

    def nxt(node: int) -> int:
        s, seq[node] = seq[node], (seq[node] + 1) % 256
        return s

    for e in range(nodes):
        body = encode([MetricValue(DataType.INT64, 0, name="bdSeq")], seq=nxt(e), timestamp_ms=born)
        out.append((f"spBv1.0/bench/NBIRTH/edge{e}", body))
    for d in range(devices):
        e = d % nodes
        birth = [MetricValue(t, None, name=f"Sensors/m{k}", alias=k + 1) for k, t in enumerate(types)]
        body = encode(birth, seq=nxt(e), timestamp_ms=born + 1 + d)
        out.append((f"spBv1.0/bench/DBIRTH/edge{e}/d{d}", body))
    for i in range(n):
        d = i % devices
        e = d % nodes
        values = [MetricValue(t, sparkplug_value(t, i, k), alias=k + 1) for k, t in enumerate(types)]
        body = encode(values, seq=nxt(e), timestamp_ms=base_ms - (n - i))
        out.append((f"spBv1.0/bench/DDATA/edge{e}/d{d}", body))
    return out


def payloads(
    n: int, devices: int, pack: int, root: str, base_ns: int, fields: int = 2, shape: str = "", nodes: int = 1
) -> list[bytes]:
    """Every PUBLISH packet, pre-encoded (packet id 1; patched per send)."""
    if shape == "sparkplug":
        return [pk.encode_publish(t, b, qos=1, mid=1, v5=False) for t, b in sparkplug(n, devices, nodes, pack, base_ns)]
    out = []
    for i in range(n):
        ts = base_ns + i * 1000
        topic = f"{root}/dev{i % devices}/telemetry"
        if shape:
            topic, body = energy(i, devices, base_ns, shape)
        elif pack == 1 and fields == 1:
            body = b'{"ts": %d, "temperature": %.1f}' % (ts, 20 + (i % 100) / 10)
        elif pack == 1:
            body = b'{"ts": %d, "temperature": %.1f, "humidity": %.1f}' % (ts, 20 + (i % 100) / 10, 40 + (i % 37) / 10)
        else:
            recs = [{"bn": f"dev{i % devices}:", "bt": ts / 1e9, "n": "r0", "v": 20.5}]
            recs += [{"n": f"r{k}", "v": 20.0 + k} for k in range(1, pack)]
            body = json.dumps(recs).encode()
        out.append(pk.encode_publish(topic, body, qos=1, mid=1, v5=False))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--window", type=int, default=1000)
    ap.add_argument("--pack", type=int, default=1)
    ap.add_argument("--root", default="devices")
    ap.add_argument("--fields", type=int, default=2, choices=[1, 2], help="readings per JSON message")
    ap.add_argument(
        "--shape",
        default="",
        choices=["", "tasmota", "energy", "sparkplug"],
        help="Tasmota ENERGY readings (as Tasmota or contract JSON), or Sparkplug B births + DDATA",
    )
    ap.add_argument("--nodes", type=int, default=1, help="Sparkplug edge nodes (the devices shared among them)")
    ap.add_argument("--client-id", default="bench-pub")
    ap.add_argument("--rate", type=float, default=0.0, help="messages/s (message k sent at t0 + k/rate); 0: flat out")
    a = ap.parse_args()
    msgs = payloads(a.n, a.devices, a.pack, a.root, time.time_ns(), a.fields, a.shape, a.nodes)
    sock = socket.create_connection(("127.0.0.1", a.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(pk.encode_connect(a.client_id, keepalive=60, v5=False, clean_start=True))
    parser = pk.Parser(v5=False)
    connack: list[pk.Packet] = []
    while not connack:
        connack = parser.feed(sock.recv(4096))
    assert isinstance(connack[0], pk.Connack) and connack[0].reason == 0, connack
    t0 = time.time()
    sent = acked = 0
    n = len(msgs)
    while acked < n:
        limit = n if not a.rate else min(n, int((time.time() - t0) * a.rate) + 1)  # paced: message k at k/rate
        if sent < limit and sent - acked < a.window:
            chunk: list[bytes] = []
            while sent < limit and sent - acked < a.window and len(chunk) < 256:
                m = msgs[sent]
                mid = sent % 65535 + 1
                # the packet id sits right after the topic: patch the pre-encoded bytes
                hdr = 1 + next(k for k in range(1, 5) if not m[k] & 0x80)
                tl = (m[hdr] << 8) | m[hdr + 1]
                at = hdr + 2 + tl
                chunk.append(m[:at] + mid.to_bytes(2, "big") + m[at + 2 :])
                sent += 1
            sock.sendall(b"".join(chunk))
            sock.setblocking(False)
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                data = None
            sock.setblocking(True)
        elif sent == acked:  # paced and nothing in flight: wait for the next message's slot
            time.sleep(min(0.001, max(0.0, t0 + sent / a.rate - time.time())))
            continue
        else:
            data = sock.recv(1 << 16)
        if data == b"":
            raise SystemExit("broker closed the connection")
        if data:
            acked += sum(1 for p in parser.feed(data) if isinstance(p, pk.Ack) and p.kind == pk.PUBACK)
    dt = time.time() - t0
    sock.sendall(pk.DISCONNECT_PACKET)
    sock.close()
    print(json.dumps({"n": n, "t0": t0, "seconds": round(dt, 3), "rate": round(n / dt)}))


if __name__ == "__main__":
    main()
