"""Simulated Sparkplug B edge nodes with devices behind them (pure, no I/O; the runner publishes).

Each fleet "device" of ``--format sparkplug_b`` is an edge node: group :data:`GROUP`, edge node id
``{id_prefix}NNNN`` (its stored id ``sim:{id_prefix}NNNN``, the client id it connects with), with
``FleetConfig.node_devices`` devices ``d0``, ``d1``… behind it (stored as ``sim:{edge}:d0``…),
each sending its profile's numeric readings as ``Sensors/<name>`` Double metrics.

Slot 0 is the births: ``NBIRTH`` (``bdSeq``, ``Node Control/Rebirth`` = false, ``Node/uptime s``)
then one ``DBIRTH`` per device, every metric with its name, alias and value. Every later slot is one
``NDATA`` (uptime) and one ``DDATA`` per device, by alias only. ``seq`` counts 0…255 over the node's
messages from its ``NBIRTH`` (seq 0). A rebirth request (``NCMD`` ``Node Control/Rebirth``) makes the
next slot the births again (same ``bdSeq``: the MQTT session and its will are unchanged). A clean
stop sends one ``DDEATH`` per device and the ``NDEATH`` carrying the birth's ``bdSeq``; the same
``NDEATH`` is the connection's last will (what the broker sends when a node drops off).

Births count as ``telemetry`` messages (they carry readings: every stored value), data too; deaths
as ``status``. ``Message.sparkplug`` names the type, counted apart in the manifest.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from ingest.decoding.sparkplug.encode import REBIRTH, MetricValue, encode
from ingest.decoding.sparkplug.proto import DataType
from ingest.decoding.sparkplug.topic import PREFIX, MessageType, command_topic
from simulators.firmware import numbers
from simulators.fleet import SPARKPLUG_GROUP, DeviceSpec, FleetConfig, Message
from simulators.profiles import PROFILES

GROUP = SPARKPLUG_GROUP
BD_SEQ = "bdSeq"
UPTIME = "Node/uptime s"
SENSORS = "Sensors/"


def edge_of(node_id: str) -> str:
    """The edge node id within a stored node id ``sim:{edge}``."""
    return node_id.split(":", 1)[1]


def device_ids(config: FleetConfig, spec: DeviceSpec) -> list[str]:
    """The stored ids of the devices behind the node ``spec``."""
    return [f"{spec.device_id}:d{k}" for k in range(config.node_devices)]


def will(spec: DeviceSpec, bd_seq: int = 0) -> tuple[str, bytes]:
    """The node's ``NDEATH``: its last will, and what it sends on a clean stop."""
    return _topic(MessageType.NDEATH, spec), encode([MetricValue(DataType.INT64, bd_seq, name=BD_SEQ)])


def rebirth_topic(spec: DeviceSpec) -> str:
    """Where the host application asks the node to rebirth."""
    return command_topic(GROUP, edge_of(spec.device_id))


def _topic(t: MessageType, spec: DeviceSpec, device: str | None = None) -> str:
    edge = edge_of(spec.device_id)
    return f"{PREFIX}{GROUP}/{t}/{edge}" + ("" if device is None else f"/{device.rsplit(':', 1)[1]}")


class SparkplugNode:
    """One edge node's messages, slot by slot (:meth:`stream`); :meth:`request_rebirth` and
    :meth:`stop` are called by the runner (the NCMD it receives, the end of the run)."""

    def __init__(self, config: FleetConfig, spec: DeviceSpec) -> None:
        self.config, self.spec = config, spec
        self.devices = device_ids(config, spec)
        self.profile = PROFILES[spec.profile]
        self.rng = random.Random(f"{config.seed}:{spec.index}:signal")
        self.states = [self.profile.new_state(d, config.start_ms / 1000, self.rng) for d in self.devices]
        self.step_ms = max(1.0, 1000 / config.rate) if config.rate > 0 else 1.0  # ms apart: one point each
        self.bd_seq = 0
        self.seq = 0
        self.aliases: dict[str, dict[str, int]] = {}  # device -> metric name -> alias
        self.rebirth = False
        self.slot = 0

    def _ts_ms(self) -> int:
        return self.config.start_ms + int(self.slot * self.step_ms)

    def request_rebirth(self) -> None:
        self.rebirth = True

    def _next_seq(self) -> int:
        s = self.seq
        self.seq = (self.seq + 1) % 256
        return s

    def _msg(self, t: MessageType, device: str | None, payload: bytes, readings: int, kind: str) -> Message:
        return Message(
            device or self.spec.device_id,
            kind,
            _topic(t, self.spec, device),
            payload,
            self.slot,
            readings=readings,
            sparkplug=str(t),
        )

    def _births(self, ts_ms: int, t_s: float) -> Iterator[Message]:
        self.seq = 0
        node = [
            MetricValue(DataType.INT64, self.bd_seq, name=BD_SEQ),
            MetricValue(DataType.BOOLEAN, False, name=REBIRTH, alias=0),
            MetricValue(DataType.UINT64, self.slot, name=UPTIME, alias=1),
        ]
        payload = encode(node, seq=self._next_seq(), timestamp_ms=ts_ms)
        yield self._msg(MessageType.NBIRTH, None, payload, 2, "telemetry")
        for device, state in zip(self.devices, self.states, strict=True):
            values = numbers(self.profile.telemetry(state, t_s, self.rng))
            names = self.aliases.setdefault(device, {n: i + 1 for i, n in enumerate(sorted(values))})
            metrics = [
                MetricValue(DataType.DOUBLE, values[n], name=SENSORS + n, alias=a)
                for n, a in names.items()
                if n in values
            ]
            yield self._msg(
                MessageType.DBIRTH,
                device,
                encode(metrics, seq=self._next_seq(), timestamp_ms=ts_ms),
                len(metrics),
                "telemetry",
            )

    def _data(self, ts_ms: int, t_s: float) -> Iterator[Message]:
        node = [MetricValue(DataType.UINT64, self.slot, alias=1)]
        yield self._msg(MessageType.NDATA, None, encode(node, seq=self._next_seq(), timestamp_ms=ts_ms), 1, "telemetry")
        for device, state in zip(self.devices, self.states, strict=True):
            values = numbers(self.profile.telemetry(state, t_s, self.rng))
            names = self.aliases[device]
            metrics = [MetricValue(DataType.DOUBLE, values[n], alias=a) for n, a in names.items() if n in values]
            payload = encode(metrics, seq=self._next_seq(), timestamp_ms=ts_ms)
            yield self._msg(MessageType.DDATA, device, payload, len(metrics), "telemetry")

    def stream(self, count: int | None) -> Iterator[Message]:
        """``count`` slots (None: endless): the births, then data (births again after a rebirth request)."""
        while count is None or self.slot < count:
            ts_ms = self._ts_ms()
            t_s = ts_ms / 1000
            if self.slot == 0 or self.rebirth:
                self.rebirth = False
                yield from self._births(ts_ms, t_s)
            else:
                yield from self._data(ts_ms, t_s)
            self.slot += 1

    def stop(self) -> list[Message]:
        """A clean stop: each device's ``DDEATH``, then the node's ``NDEATH`` (the birth's ``bdSeq``)."""
        ts_ms = self._ts_ms()
        out = [
            self._msg(MessageType.DDEATH, d, encode([], seq=self._next_seq(), timestamp_ms=ts_ms), 0, "status")
            for d in self.devices
        ]
        topic, payload = will(self.spec, self.bd_seq)
        out.append(Message(self.spec.device_id, "status", topic, payload, self.slot, sparkplug=str(MessageType.NDEATH)))
        return out
