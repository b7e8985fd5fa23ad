"""CPU of the receive thread per message (not a test): Tasmota SENSOR messages (the ``tasmota``
preset) and the same readings as the built-in contract's JSON, as QoS 1 PUBLISHes from an
in-process fake broker over localhost to the native session, handed to the intake (decode, route,
batch); a writer thread settles each full batch (PUBACKs go back through the session).

/work/venv/bin/python bench/receive_bench.py [--n 60000] [--rounds 3] [--repo PATH]

Reports, per case, the best round's session-thread CPU µs per message (``pthread_getcpuclockid``:
the broker and writer threads are not counted) and the in-process decode+route cost alone
(``Router.handle``, no encoding). ``--repo`` runs another checkout's code with this script, so
two versions can be compared in alternating runs.
"""

from __future__ import annotations

import argparse
import queue
import socket
import sys
import threading
import time
from pathlib import Path

ap = argparse.ArgumentParser(description="receive-thread CPU per message")
ap.add_argument("--n", type=int, default=60000)
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]))
args = ap.parse_args()
sys.path[:0] = [args.repo, str(Path(args.repo) / "bench")]

from mqtt_pub import energy  # noqa: E402

from ingest.decoding.decode import Decoder  # noqa: E402
from ingest.decoding.mappings import parse_mappings  # noqa: E402
from ingest.decoding.topics import Topics  # noqa: E402
from ingest.intake import Intake  # noqa: E402
from ingest.metrics import Metrics  # noqa: E402
from ingest.mqtt import packets as pk  # noqa: E402
from ingest.mqtt.acks import AckTracker  # noqa: E402
from ingest.mqtt.options import tune_gc  # noqa: E402
from ingest.mqtt.session import Options, Session  # noqa: E402
from ingest.mqtt.settle import Settler  # noqa: E402
from ingest.routing import Batch, Router  # noqa: E402
from ingest.steps import Steps  # noqa: E402

BATCH = 5000


def decoder(shape: str) -> Decoder:
    if shape == "tasmota":
        return Decoder(topics=Topics(parse_mappings('[[mapping]]\npreset = "tasmota"\n')))
    return Decoder()


def broker(server: socket.socket, wire: bytes, n: int, done: threading.Event) -> None:
    conn, _ = server.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.recv(65536)  # CONNECT
    conn.sendall(pk.encode_connack(False, 0, v5=False))
    conn.recv(65536)  # SUBSCRIBE
    conn.sendall(pk.encode_suback(1, [1], v5=False))
    threading.Thread(target=conn.sendall, args=(wire,), daemon=True).start()
    acked, buf = 0, b""
    while acked < n:
        data = conn.recv(1 << 20)
        if not data:
            break
        buf += data
        while len(buf) >= 2 and len(buf) >= 2 + buf[1]:  # PUBACK (4 bytes) or PINGREQ (2)
            if buf[0] >> 4 == pk.PUBACK:
                acked += 1
            elif buf[0] >> 4 == pk.PINGREQ:
                conn.sendall(b"\xd0\x00")
            buf = buf[2 + buf[1] :]
    done.set()
    conn.close()


class Writers(dict[str, "Writers"]):
    """Every destination's writer: a thread settling each batch as it comes."""

    def __init__(self) -> None:
        super().__init__()
        self.q: queue.Queue[Batch] = queue.Queue()
        self.settler: Settler | None = None

    def __missing__(self, key: str) -> Writers:
        return self

    def submit(self, batch: Batch) -> None:
        self.q.put(batch)

    def run(self) -> None:
        while True:
            b = self.q.get()
            assert self.settler is not None
            self.settler.settle(b.tokens)


def receive(shape: str, n: int, base: int) -> float:
    """Session-thread CPU µs per message for ``n`` messages of ``shape``."""
    msgs = [energy(i, 100, base, shape) for i in range(n)]
    wire = b"".join(pk.encode_publish(t, p, qos=1, mid=i % 65535 + 1, v5=False) for i, (t, p) in enumerate(msgs))
    server = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()
    threading.Thread(target=broker, args=(server, wire, n, done), daemon=True).start()
    metrics = Metrics()
    router = Router(decoder(shape), batch_size=BATCH, flush_interval=3600)
    acks = AckTracker()
    writers = Writers()
    opts = Options("127.0.0.1", server.getsockname()[1], "bench", [("#", 1)], v5=False, keepalive=60)
    session = Session(opts, None)  # type: ignore[arg-type]
    settler = writers.settler = Settler(acks, session, metrics)  # type: ignore[arg-type]
    intake = Intake(router, acks, settler, writers, Steps(metrics), metrics)
    session.handler = intake
    threading.Thread(target=writers.run, daemon=True).start()
    session.start()
    assert session._thread is not None and session._thread.ident is not None
    clock = time.pthread_getcpuclockid(session._thread.ident)
    cpu0 = time.clock_gettime(clock)
    deadline = time.monotonic() + 120
    while router.counts[("sensor_readings", "received")] < n and time.monotonic() < deadline:
        time.sleep(0.01)
    with intake.lock:
        rest = router.take_all()  # the part batch (on this thread: not counted)
    for b in rest:
        writers.submit(b)
    if not done.wait(120):
        raise SystemExit("not every message was acknowledged")
    cpu = time.clock_gettime(clock) - cpu0
    session.stop()
    server.close()
    assert dict(router.counts) == {("sensor_readings", "received"): n}, dict(router.counts)
    return cpu / n * 1e6


def route(shape: str, n: int, base: int) -> float:
    """In-process CPU µs per message of ``Router.handle`` (decode, route, batch; no encoding)."""
    msgs = [energy(i, 100, base, shape) for i in range(n)]
    r = Router(decoder(shape), batch_size=BATCH, flush_interval=3600)
    handle = r.handle
    t0 = time.process_time()
    for t, p in msgs:
        handle(t, p, None, base)
    return (time.process_time() - t0) / n * 1e6


def main() -> None:
    tune_gc()
    base = time.time_ns()
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for shape in ("energy", "tasmota"):
            for what, fn in (("route", route), ("receive", receive)):
                key = f"{what} {shape}"
                best[key] = min(best.get(key, 1e9), fn(shape, args.n, base))
    print(" ".join(f"{k}={v:.2f}" for k, v in best.items()))


if __name__ == "__main__":
    main()
