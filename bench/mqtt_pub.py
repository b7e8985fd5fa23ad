"""Burst publisher for the benchmarks: N telemetry messages at QoS 1 over one raw MQTT 3.1.1 socket.

    python bench/mqtt_pub.py --port P --n N [--devices 100] [--window 1000] [--pack 1] [--root devices]

Keeps at most ``--window`` unacknowledged PUBLISHes in flight (the project's packet codec encodes
them and parses the PUBACKs), so the broker, not this process, is the limit. Payload per message,
``ts`` unique and 1 µs apart: ``{"ts": <ns>, "temperature": x, "humidity": y}`` (``--fields 1``:
temperature only); with ``--pack K`` a SenML pack of K records instead (K readings per message);
``--shape tasmota|energy`` nine Tasmota ENERGY readings, as Tasmota sends them or as contract JSON.
Prints one JSON line:
``{"n", "t0", "seconds", "rate"}`` with ``t0`` the epoch time of the first publish. ``--rate R`` paces
the publisher (message k goes out at ``t0 + k/R``) for latency measurements.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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


def payloads(n: int, devices: int, pack: int, root: str, base_ns: int, fields: int = 2, shape: str = "") -> list[bytes]:
    """Every PUBLISH packet, pre-encoded (packet id 1; patched per send)."""
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
    ap.add_argument("--shape", default="", choices=["", "tasmota", "energy"], help="Tasmota ENERGY readings")
    ap.add_argument("--client-id", default="bench-pub")
    ap.add_argument("--rate", type=float, default=0.0, help="messages/s (message k sent at t0 + k/rate); 0: flat out")
    a = ap.parse_args()
    msgs = payloads(a.n, a.devices, a.pack, a.root, time.time_ns(), a.fields, a.shape)
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
