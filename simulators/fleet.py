"""The simulated fleet as a pure, deterministic message generator (no I/O).

Each device owns three ``random.Random`` streams seeded from (seed, device index): one for its
signals, one for faults (malformed/duplicate decisions) and one for malformation details, so the
same seed and arguments give a byte-identical message sequence, and turning faults on does not
change the content of the well-formed messages.

Message ``n`` (the slot) of a device is stamped ``start + n / rate``: ``ts`` follows the
configured start time (default: now), in epoch milliseconds while ``rate <= 1000`` and in
nanoseconds above that or for ``rate == 0`` (where slots are 1 µs apart, times the samples per
SenML pack). Timestamps are strictly increasing per device, hence per (device, kind). A SenML
pack of several samples spreads them within its slot, on whole microseconds (the resolution a
SenML time survives decoding with).

Malformed messages (``--malformed P``) replace well-formed ones and carry the id
``mf-<seed>-<device_id>-<n>``; duplicates (``--duplicates P``) follow their original at once.
Devices are numbered from 0 (``sim-0000``…) as `iot sim provision` registers them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Literal

from simulators.faults import ID_FREE, MALFORMATIONS, malformed
from simulators.firmware import FIRMWARES, METRIC_READINGS, announce, numbers, readings
from simulators.profiles import PROFILES, Fields
from simulators.senml import pack

TIME_SERIES = ("telemetry", "metrics", "events")
DOCUMENTS = ("config", "firmware", "maintenance")
KINDS = (*TIME_SERIES, *DOCUMENTS, "status")
PRELUDE = ("status", "config", "firmware", "telemetry", "metrics", "events", "maintenance")
"""A device's first messages: a run of ``len(PRELUDE)`` messages per device has every kind."""
MIX = (
    ("telemetry", 0.82),
    ("metrics", 0.12),
    ("events", 0.04),
    ("config", 0.008),
    ("firmware", 0.006),
    ("maintenance", 0.006),
)
Format = Literal[
    "json", "senml", "contract", "tasmota", "zigbee2mqtt", "shelly_gen2", "esphome", "ttn_v3", "sparkplug_b"
]
"""The payload formats a fleet can send: the built-in contract (``json``, alias ``contract``, or
``senml``), an existing firmware's topics and payloads (:mod:`simulators.firmware`), or Sparkplug B
edge nodes (:mod:`simulators.sparkplug`: each "device" of the fleet is an edge node with devices)."""
FORMATS: tuple[str, ...] = (
    "json", "senml", "contract", "tasmota", "zigbee2mqtt", "shelly_gen2", "esphome", "ttn_v3", "sparkplug_b"
)  # fmt: skip
SPARKPLUG = "sparkplug_b"
SPARKPLUG_GROUP = "sim"
"""The Sparkplug group of simulated edge nodes: node ``{group}:{id_prefix}NNNN`` (its stored id)."""
DEVICE_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-")


@dataclass(frozen=True)
class FleetConfig:
    """What to simulate. ``count`` (messages per device) or ``duration`` bounds a run."""

    devices: int = 1
    rate: float = 1.0
    duration: float | None = None
    count: int | None = None
    seed: int = 0
    profiles: tuple[str, ...] = tuple(PROFILES)
    format: Format = "json"
    pack: int = 1
    malformed: float = 0.0
    duplicates: float = 0.0
    offline: float = 0.0
    start_ms: int = 1_764_028_800_000
    id_prefix: str = "sim-"
    topic_root: str = "devices"
    device_ids: tuple[str, ...] = ()
    """Explicit ids, if not ``{id_prefix}0000``, ``{id_prefix}0001``…"""
    node_devices: int = 2
    """Sparkplug B: devices behind each edge node."""

    def validate(self) -> None:
        """Raise ``ValueError`` with a one-line message for a value that cannot work."""
        if self.devices < 1:
            raise ValueError(f"--devices must be at least 1, got {self.devices}")
        if self.rate < 0:
            raise ValueError(f"--rate must be >= 0, got {self.rate}")
        if not self.profiles:
            raise ValueError("at least one --profile is needed")
        for p in self.profiles:
            if p not in PROFILES:
                raise ValueError(f"unknown profile {p!r}: choose from {', '.join(PROFILES)}")
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}: use one of {', '.join(FORMATS)}")
        if (self.format in FIRMWARES or self.format == SPARKPLUG) and (self.malformed or self.duplicates):
            raise ValueError(f"--malformed and --duplicates apply to the built-in contract, not {self.format}")
        if self.format == SPARKPLUG and not 1 <= self.node_devices <= 1000:
            raise ValueError(f"--node-devices must be 1 to 1000, got {self.node_devices}")
        if self.pack < 1:
            raise ValueError(f"--pack must be at least 1, got {self.pack}")
        for name in ("malformed", "duplicates", "offline"):
            p = getattr(self, name)
            if not 0 <= p <= 1:
                raise ValueError(f"--{name} must be a fraction in [0, 1], got {p}")
        if self.count is not None and self.count < 1:
            raise ValueError(f"--count must be at least 1, got {self.count}")
        if self.duration is not None and self.duration <= 0:
            raise ValueError(f"--duration must be > 0, got {self.duration}")
        if self.count is None and self.duration is None:
            raise ValueError("give --duration or --count")
        if self.device_ids and len(self.device_ids) < self.devices:
            raise ValueError(f"{self.devices} devices asked for, only {len(self.device_ids)} device ids known")
        for i in range(self.devices):
            d = self.device_id(i)
            if not 0 < len(d) <= 64 or not set(d) <= DEVICE_ID_CHARS:
                raise ValueError(f"invalid device id {d!r}: 1-64 of [A-Za-z0-9_.:-]")

    def device_id(self, index: int) -> str:
        """The id of device ``index``: ``{id_prefix}0000``… (the ids `iot sim provision` gives)."""
        if self.device_ids:
            return self.device_ids[index]
        if self.format == SPARKPLUG:  # the edge node's stored id
            return f"{SPARKPLUG_GROUP}:{self.id_prefix}{index:04d}"
        return f"{self.id_prefix}{index:04d}"

    @property
    def slots(self) -> int | None:
        """Messages per device when known up front (``count``, or ``duration * rate``)."""
        if self.count is not None:
            return self.count
        if self.duration is not None and self.rate > 0:
            return max(1, round(self.duration * self.rate))
        return None

    @property
    def ts_unit(self) -> Literal["ms", "ns"]:
        return "ms" if 0 < self.rate <= 1000 else "ns"


@dataclass(frozen=True)
class DeviceSpec:
    index: int
    device_id: str
    profile: str
    offline: bool = False


@dataclass(frozen=True, slots=True)
class Malformation:
    id: str
    why: str
    id_in_payload: bool


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT publish. ``points`` are the (ts_ns, fields) the store must end up holding."""

    device_id: str
    kind: str
    topic: str
    payload: bytes
    slot: int
    malformed: Malformation | None = None
    duplicate: bool = False
    points: tuple[tuple[int, Fields], ...] = ()
    readings: int = 0
    metric_readings: int = 0  # metrics readings a telemetry message carries too (TTN's RSSI/SNR)
    sparkplug: str = ""  # the Sparkplug B message type (NBIRTH…), counted apart in the manifest

    @property
    def counted(self) -> bool:
        """Whether the manifest counts it (not a deliberate fault)."""
        return self.malformed is None and not self.duplicate


def plan(config: FleetConfig) -> list[DeviceSpec]:
    """The devices: ids, profiles (cycled), and which ones drop offline mid-run."""
    n = config.devices
    k = 0 if config.offline == 0 else max(1, round(config.offline * n))
    offline = set(random.Random(f"{config.seed}:offline").sample(range(n), min(k, n)))
    return [
        DeviceSpec(i, config.device_id(i), config.profiles[i % len(config.profiles)], i in offline) for i in range(n)
    ]


@dataclass
class _Clock:
    start_ns: int
    unit: Literal["ms", "ns"]
    step: Fraction  # ns per slot
    last: int = -1

    def at(self, slot: int) -> int:
        """Timestamp (in ``unit``) of ``slot``, strictly increasing."""
        ns = self.start_ns + int(slot * self.step)
        ts = ns // 1_000_000 if self.unit == "ms" else ns
        ts = max(ts, self.last + 1)
        self.last = ts
        return ts

    def to_ns(self, ts: int) -> int:
        return ts * 1_000_000 if self.unit == "ms" else ts


def _clock(config: FleetConfig, samples: int = 1) -> _Clock:
    step = (
        Fraction(1000 * samples)
        if config.rate == 0
        else Fraction(10**9) / Fraction(config.rate).limit_denominator(10**6)
    )
    return _Clock(config.start_ms * 1_000_000, config.ts_unit, step)


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def _choose(rng: random.Random) -> str:
    r = rng.random()
    for kind, p in MIX:
        if r < p:
            return kind
        r -= p
    return "telemetry"


def device_stream(config: FleetConfig, spec: DeviceSpec, count: int | None = None) -> Iterator[Message]:
    """The messages of one device: ``count`` slots (default ``config.slots``; None = endless),
    plus the duplicate copies that follow their originals."""
    count = config.slots if count is None else count
    if config.format == SPARKPLUG:
        raise ValueError("Sparkplug B edge nodes are streamed by simulators.sparkplug.SparkplugNode")
    if config.format in FIRMWARES:
        yield from firmware_stream(config, spec, count)
        return
    profile = PROFILES[spec.profile]
    seed = f"{config.seed}:{spec.index}"
    rng, frng, mrng = (random.Random(f"{seed}:{s}") for s in ("signal", "faults", "malformed"))
    prefix = f"{config.topic_root}/{spec.device_id}"
    state = profile.new_state(spec.device_id, config.start_ms / 1000, rng)
    n_metrics = len(profile.metric_units) - (0 if profile.battery_powered else 1)
    per_pack = max(1, config.pack // len(profile.units))
    metric_per_pack = max(1, config.pack // n_metrics)
    clock = _clock(config, max(per_pack, metric_per_pack) if config.format == "senml" else 1)
    last_us: dict[str, int] = {}  # SenML times resolve to the microsecond: keep them apart
    n_malformed = 0
    slot = 0
    while count is None or slot < count:
        kind = PRELUDE[slot] if slot < len(PRELUDE) else ("events" if state.alarm is not None else _choose(rng))
        ts = clock.at(slot)
        t_s = clock.to_ns(ts) / 1e9
        points: list[tuple[int, Fields]] = []
        readings = 0
        body: Any
        if kind == "status":
            payload = b"online"
        elif kind in ("telemetry", "metrics"):
            gen = profile.telemetry if kind == "telemetry" else profile.metrics
            if config.format == "senml":
                samples = per_pack if kind == "telemetry" else metric_per_pack
                for k in range(samples):  # extra samples are spread within the slot
                    us = (clock.to_ns(ts) + int(k * clock.step / samples)) // 1000
                    us = last_us[kind] = max(us, last_us.get(kind, -1) + 1)
                    points.append((us * 1000, gen(state, us / 1e6, rng)))
                units = profile.units if kind == "telemetry" else profile.metric_units
                body = pack(f"{spec.device_id}:", points, units)
            else:
                fields = gen(state, t_s, rng)
                points.append((clock.to_ns(ts), fields))
                body = {"ts": ts, **fields}
            readings = sum(len(f) for _, f in points)
            payload = _json(body)
        elif kind == "events":
            level, code, text = profile.event(state, rng)
            fields = {"code": code, "message": text}
            points.append((clock.to_ns(ts), dict(fields)))
            readings = len(fields)
            payload = _json({"ts": ts, "level": level, **fields})
        else:
            if kind == "config":
                body = profile.config(state, rng, initial=slot < len(PRELUDE))
                state.config = body
            elif kind == "firmware":
                body = profile.firmware(state, rng, initial=slot < len(PRELUDE))
            else:
                body = profile.maintenance(state, t_s, rng)
            payload = _json({"ts": ts, **body})
        msg = Message(spec.device_id, kind, f"{prefix}/{kind}", payload, slot, points=tuple(points), readings=readings)
        bad, dup = frng.random(), frng.random()
        if slot > 0 and bad < config.malformed:
            why = mrng.choice(MALFORMATIONS)
            mf_id = f"mf-{config.seed}-{spec.device_id}-{n_malformed}"
            n_malformed += 1
            mkind, topic, mpayload = malformed(why, mf_id, prefix, clock.to_ns(ts) // 1_000_000, mrng)
            yield Message(
                spec.device_id, mkind, topic, mpayload, slot, malformed=Malformation(mf_id, why, why not in ID_FREE)
            )
        else:
            yield msg
            if slot > 0 and dup < config.duplicates:
                yield replace(msg, duplicate=True)
        slot += 1


def firmware_stream(config: FleetConfig, spec: DeviceSpec, count: int | None) -> Iterator[Message]:
    """A device speaking ``config.format`` (one of :data:`simulators.firmware.FIRMWARES`): ``count``
    slots (None: endless); slot 0 announces the device where the format can, every other slot is
    one sample (ESPHome: one message per reading, sharing the slot's time)."""
    profile = PROFILES[spec.profile]
    rng = random.Random(f"{config.seed}:{spec.index}:signal")
    state = profile.new_state(spec.device_id, config.start_ms / 1000, rng)
    clock = _clock(config)
    hello = announce(config.format, spec.device_id)
    extra = METRIC_READINGS.get(config.format, 0)
    slot = 0
    while count is None or slot < count:
        ts_ns = clock.to_ns(clock.at(slot))
        if slot == 0 and hello is not None:
            yield Message(spec.device_id, "status", hello[0], hello[1], slot)
        else:
            fields = numbers(profile.telemetry(state, ts_ns / 1e9, rng))
            for topic, payload, n in readings(config.format, spec.device_id, spec.profile, ts_ns, fields, rng):
                shown: Fields = dict(fields)
                if config.format == "esphome":  # one reading per message: .../sensor/<name>/state
                    name = topic.split("/")[-2]
                    shown = {name: fields[name]}
                points = ((ts_ns, shown),)
                yield Message(spec.device_id, "telemetry", topic, payload, slot, None, False, points, n, extra)
        slot += 1


def generate(config: FleetConfig) -> Iterator[Message]:
    """Every device's stream, interleaved slot by slot (device 0, 1, … for each slot)."""
    streams = [device_stream(config, spec) for spec in plan(config)]
    pending: list[Message | None] = [next(s, None) for s in streams]
    slot = 0
    while any(m is not None for m in pending):
        for i, s in enumerate(streams):
            while (m := pending[i]) is not None and m.slot == slot:
                yield m
                pending[i] = next(s, None)
        slot += 1


@dataclass
class Tally:
    """Counts per kind, the manifest's building block."""

    messages: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    readings: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIME_SERIES, 0))
    documents: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DOCUMENTS, 0))

    def add(self, msg: Message) -> None:
        self.messages[msg.kind] += 1
        if msg.kind in self.readings:
            self.readings[msg.kind] += msg.readings
            self.readings["metrics"] += msg.metric_readings
        elif msg.kind in self.documents:
            self.documents[msg.kind] += 1

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {"messages": dict(self.messages), "readings": dict(self.readings), "documents": dict(self.documents)}
