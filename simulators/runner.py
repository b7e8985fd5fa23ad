"""Publish a generated fleet to a real MQTT broker: one paho client per device, one thread.

All clients run on paho's external-loop API (``loop_read``/``loop_write``/``loop_misc``) under a
single ``selectors`` loop, so a thousand devices cost a thousand sockets, not a thousand threads.
Each client has ``client_id`` = device id, a clean session, the last will ``offline`` (QoS 1,
not retained) on its status topic, and publishes at QoS 1; the manifest counts a message only
once the broker has acknowledged it (PUBACK).

Pacing: slot ``k`` of device ``i`` is due at ``t0 + (k + i / N) / rate`` on the monotonic clock,
so sends spread evenly and a late loop catches up in bursts; the loop sleeps in ``select`` until
the next due time (never spins). ``rate == 0`` sends as fast as acknowledgements allow, each
device keeping at most ``window`` publishes in flight.

Dropping offline: a device picked by ``--offline`` stops half-way, waits for its in-flight
acknowledgements, then closes its TCP socket without sending DISCONNECT
(``client.socket().close()``), so the broker publishes its last will.
"""

from __future__ import annotations

import contextlib
import heapq
import selectors
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.redact import redact_url
from ingest.decoding.sparkplug.encode import requests_rebirth
from ingest.mqtt import broker as ingest_broker
from ingest.mqtt.broker import BrokerAddress
from simulators import sparkplug
from simulators.firmware import goodbye
from simulators.fleet import SPARKPLUG, DeviceSpec, FleetConfig, Message, device_stream, plan
from simulators.manifest import Manifest


class SimError(Exception):
    """The run cannot go on: one line for the user, ``code`` for the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://[user:pass@]host:port`` or ``mqtts://…``; ``ValueError`` for anything else."""
    if url.strip() in ("", "embedded"):
        raise ValueError(
            "the simulator needs a running broker: give --broker mqtt://host:port "
            "(or use `iot demo`, which runs an embedded broker with a fleet)"
        )
    try:
        return ingest_broker.parse_broker_url(url)
    except ingest_broker.BrokerConfigError as e:
        raise ValueError(f"invalid broker URL {redact_url(url)!r}: {redact_url(str(e))}") from None


@dataclass(frozen=True)
class Progress:
    elapsed: float
    sent: int
    acked: int
    devices_online: int

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(eq=False)
class _Device:
    spec: DeviceSpec
    client: mqtt.Client
    stream: Iterator[Message]
    fd: int = -1
    slot: int = 0
    next_msg: Message | None = None
    pending: dict[int, tuple[Message, float]] = field(default_factory=dict)
    connected: bool = False
    refused: str = ""
    closing: bool = False  # we stopped it (done or going offline)
    lost: bool = False
    draining: bool = False  # no more sends; close once acks are in
    blocked: bool = False
    due: float = 0.0
    node: sparkplug.SparkplugNode | None = None  # --format sparkplug_b: the edge node this client is


def run_fleet(
    config: FleetConfig,
    broker_url: str,
    progress: Callable[[Progress], None] | None = None,
    passwords: Mapping[str, str] | None = None,
    *,
    window: int = 100,
    connect_timeout: float = 15.0,
    ack_timeout: float = 30.0,
) -> Manifest:
    """Connect every device, publish its stream paced at ``config.rate``, return the manifest.

    ``passwords`` maps device id → secret (username = device id); without it the URL's
    credentials, if any, are used for every device. Raises ``SimError`` if the broker cannot be
    reached or refuses a device.
    """
    config.validate()
    try:
        addr = parse_broker_url(broker_url)
    except ValueError as e:
        raise SimError(str(e), 2) from None
    specs = plan(config)
    if passwords is not None:
        missing = [s.device_id for s in specs if s.device_id not in passwords]
        if missing:
            raise SimError(f"no password for device {missing[0]} in the password file", 2)
    manifest = Manifest.start(config, specs)
    return _Run(config, addr, specs, manifest, progress, passwords, window, connect_timeout, ack_timeout).run()


class _Run:
    def __init__(
        self,
        config: FleetConfig,
        addr: BrokerAddress,
        specs: list[DeviceSpec],
        manifest: Manifest,
        progress: Callable[[Progress], None] | None,
        passwords: Mapping[str, str] | None,
        window: int,
        connect_timeout: float,
        ack_timeout: float,
    ) -> None:
        self.config, self.addr, self.manifest = config, addr, manifest
        self.progress, self.window = progress, window
        self.connect_timeout, self.ack_timeout = connect_timeout, ack_timeout
        self.sel = selectors.DefaultSelector()
        self.slots = config.slots
        self.half = None if self.slots is None else max(1, self.slots // 2)
        self.devices = [self._device(s, passwords) for s in specs]
        self.heap: list[tuple[float, int]] = []
        self.acked = 0
        self.wants_write: set[_Device] = set()
        self.open: set[_Device] = set(self.devices)  # not yet closing
        self.draining: set[_Device] = set()
        self.t0 = 0.0
        self.stop_at: float | None = None

    # -- set-up --------------------------------------------------------------------------
    def _device(self, spec: DeviceSpec, passwords: Mapping[str, str] | None) -> _Device:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=spec.device_id, clean_session=True, protocol=mqtt.MQTTv311
        )
        if self.config.format == SPARKPLUG:
            node = sparkplug.SparkplugNode(self.config, spec)
            dev = _Device(spec, client, node.stream(self.config.slots), node=node)
            will = sparkplug.will(spec, node.bd_seq)
        else:
            dev = _Device(spec, client, device_stream(self.config, spec))
            will = goodbye(self.config.format, spec.device_id) or (
                f"{self.config.topic_root}/{spec.device_id}/status",
                b"offline",
            )
        client.user_data_set(dev)
        client.will_set(will[0], will[1], qos=1, retain=False)
        client.max_inflight_messages_set(self.window)
        client.max_queued_messages_set(0)
        if passwords is not None:
            client.username_pw_set(spec.device_id, passwords[spec.device_id])
        elif self.addr.username:
            client.username_pw_set(self.addr.username, self.addr.password)
        if self.addr.tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return dev

    def _on_connect(self, client: mqtt.Client, dev: _Device, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            dev.refused = str(rc)
        else:
            dev.connected = True
            if dev.node is not None:  # the host application's rebirth requests
                client.subscribe(sparkplug.rebirth_topic(dev.spec), qos=0)

    def _on_message(self, client: mqtt.Client, dev: _Device, message: mqtt.MQTTMessage) -> None:
        if dev.node is not None and requests_rebirth(bytes(message.payload)):
            dev.node.request_rebirth()  # the next slot but one is the births again (one is generated ahead)

    def _on_publish(self, client: mqtt.Client, dev: _Device, mid: int, rc: Any, props: Any) -> None:
        entry = dev.pending.pop(mid, None)
        if entry is None:
            return
        self.acked += 1
        self.manifest.acked(entry[0])
        if dev.blocked and len(dev.pending) <= self.window // 2:
            dev.blocked = False
            heapq.heappush(self.heap, (dev.due, dev.spec.index))

    def _on_disconnect(self, client: mqtt.Client, dev: _Device, flags: Any, rc: Any, props: Any) -> None:
        if not dev.closing:
            dev.lost = True

    def _connect_all(self) -> None:
        a = self.addr
        for dev in self.devices:
            dev.client.connect_timeout = self.connect_timeout
            try:
                dev.client.connect(a.host, a.port, keepalive=30)
            except (OSError, ssl.SSLError) as e:
                self._close_all()
                raise SimError(f"cannot connect to broker {a.host}:{a.port}: {e.strerror or e}") from None
            sock = dev.client.socket()
            assert sock is not None
            dev.fd = sock.fileno()
            self.sel.register(dev.fd, selectors.EVENT_READ, dev)
        deadline = time.monotonic() + self.connect_timeout
        while not all(d.connected for d in self.devices):
            self._io(0.05)
            for d in self.devices:
                if d.refused:
                    self._close_all()
                    raise SimError(f"broker refused device {d.spec.device_id}: {d.refused}")
                if d.lost:
                    self._close_all()
                    raise SimError(f"broker closed the connection of {d.spec.device_id}")
            if time.monotonic() > deadline:
                self._close_all()
                raise SimError(f"no CONNACK from {a.host}:{a.port} within {self.connect_timeout:.0f}s")

    # -- network -------------------------------------------------------------------------
    def _io(self, timeout: float) -> None:
        for dev in list(self.wants_write):
            if dev.client.want_write() and dev.client.socket() is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self.sel.modify(dev.fd, selectors.EVENT_READ | selectors.EVENT_WRITE, dev)
            else:
                self.wants_write.discard(dev)
        for key, events in self.sel.select(timeout):
            dev = key.data
            c = dev.client
            if events & selectors.EVENT_READ:
                c.loop_read()
                sock = c.socket()
                while sock is not None and getattr(sock, "pending", lambda: 0)() > 0:
                    c.loop_read()
                    sock = c.socket()
            if events & selectors.EVENT_WRITE and c.socket() is not None:
                c.loop_write()
                if not c.want_write():
                    self.sel.modify(dev.fd, selectors.EVENT_READ, dev)
            if c.socket() is None:
                self._forget(dev)

    def _forget(self, dev: _Device) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(dev.fd)
        self.wants_write.discard(dev)
        if not dev.closing:
            dev.lost = True
            dev.closing = True
            self.open.discard(dev)
            self.draining.discard(dev)

    def _close_all(self) -> None:
        for dev in self.devices:
            dev.closing = True
            sock = dev.client.socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        self.sel.close()

    # -- sending -------------------------------------------------------------------------
    def _due(self, dev: _Device) -> float:
        rate = self.config.rate
        if rate == 0:
            return 0.0
        return self.t0 + (dev.slot + dev.spec.index / len(self.devices)) / rate

    def _send(self, dev: _Device, msg: Message) -> None:
        info = dev.client.publish(msg.topic, msg.payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._forget(dev)
            return
        dev.pending[info.mid] = (msg, time.monotonic())
        self.manifest.sent += 1
        if dev.client.want_write():
            self.wants_write.add(dev)

    def _send_slot(self, dev: _Device) -> None:
        """Publish the device's next slot (with its duplicate copies); schedule what follows."""
        msg = dev.next_msg if dev.next_msg is not None else next(dev.stream, None)
        dev.next_msg = None
        while msg is not None and msg.slot == dev.slot:
            self._send(dev, msg)
            msg = next(dev.stream, None)
        dev.next_msg = msg
        dev.slot += 1
        if dev.closing:
            return
        stop = msg is None or (self.stop_at is not None and time.monotonic() >= self.stop_at)
        if stop or (dev.spec.offline and self.half is not None and dev.slot >= self.half):
            self._drain(dev)
            return
        dev.due = self._due(dev)
        if len(dev.pending) >= self.window:
            dev.blocked = True
        else:
            heapq.heappush(self.heap, (dev.due, dev.spec.index))

    def _drain(self, dev: _Device) -> None:
        """No more sends for ``dev``: it leaves once its publishes are acknowledged (a Sparkplug
        node that stops cleanly sends its deaths first; one that drops off leaves it to its will)."""
        if dev.node is not None and not dev.spec.offline and not dev.closing:
            for msg in dev.node.stop():
                self._send(dev, msg)
        dev.draining = True
        self.draining.add(dev)

    def _finish(self, dev: _Device) -> None:
        """A drained device leaves: abruptly if it is one that drops offline, else cleanly."""
        dev.closing = True
        dev.draining = False
        self.open.discard(dev)
        self.draining.discard(dev)
        if dev.spec.offline:
            sock = dev.client.socket()
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(dev.fd)
            if sock is not None:
                sock.close()  # no DISCONNECT: the broker publishes the last will
            self.manifest.went_offline(dev.spec.device_id)
        else:
            dev.client.disconnect()
            if dev.client.socket() is None:
                self._forget(dev)

    def run(self) -> Manifest:
        self._connect_all()
        self.t0 = start = time.monotonic()
        self.stop_at = start + self.config.duration if self.slots is None and self.config.duration else None
        half_time = start + self.config.duration / 2 if self.half is None and self.config.duration else None
        for dev in self.devices:
            dev.due = self._due(dev)
            heapq.heappush(self.heap, (dev.due, dev.spec.index))
        last_report = last_misc = start
        while True:
            now = time.monotonic()
            burst = 0
            while self.heap and self.heap[0][0] <= now and burst < 256:
                _, i = heapq.heappop(self.heap)
                dev = self.devices[i]
                if dev.draining or dev.closing:
                    continue
                if half_time is not None and dev.spec.offline and now >= half_time:
                    self._drain(dev)
                    continue
                self._send_slot(dev)
                burst += 1
            for dev in [d for d in self.draining if not d.pending]:
                self._finish(dev)
            if not self.open:
                break
            if self.heap and self.heap[0][0] <= now:
                timeout = 0.0
            else:
                timeout = min(0.1, max(0.0, self.heap[0][0] - now)) if self.heap else 0.1
            self._io(timeout)
            now = time.monotonic()
            if now - last_misc >= 1.0:
                last_misc = now
                if self._stalled(now):
                    break
                for dev in self.open:
                    if dev.client.socket() is not None:
                        dev.client.loop_misc()
            if self.progress and now - last_report >= 0.25:
                last_report = now
                self.progress(self._progress(start))
        self.manifest.unacked = sum(len(d.pending) for d in self.devices)
        for dev in list(self.open):
            dev.closing = True
            dev.client.disconnect()
        self._io(0)
        self._close_all()
        self.manifest.elapsed_s = time.monotonic() - start
        self.manifest.lost = [d.spec.device_id for d in self.devices if d.lost]
        if self.progress:
            self.progress(self._progress(start))
        return self.manifest

    def _stalled(self, now: float) -> bool:
        """Whether some publish has waited longer than ``ack_timeout`` for its PUBACK."""
        for dev in self.open:
            if dev.pending:
                _, sent_at = next(iter(dev.pending.values()))
                if now - sent_at > self.ack_timeout:
                    return True
        return False

    def _progress(self, start: float) -> Progress:
        return Progress(time.monotonic() - start, self.manifest.sent, self.acked, len(self.open))
