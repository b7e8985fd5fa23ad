"""The run manifest: exact counts of what the broker acknowledged. Pure, no I/O.

Only well-formed, first copies count in ``messages``/``readings``/``documents``; malformed
messages are listed by id and duplicates counted apart. ``samples`` are spot-check readings
(kind, device, ts in ns, fields) whose values must appear in the store as given (for events,
``fields`` holds ``code`` and ``message``; ``level`` travels alongside).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulators.fleet import KINDS, SPARKPLUG, DeviceSpec, FleetConfig, Message, Tally
from simulators.sparkplug import device_ids


@dataclass
class DeviceEntry:
    profile: str
    tally: Tally = field(default_factory=Tally)
    offline: bool = False
    samples: int = 0


@dataclass
class Manifest:
    seed: int
    format: str
    start_ms: int
    ts_unit: str
    devices: dict[str, DeviceEntry]
    totals: Tally = field(default_factory=Tally)
    malformed: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    duplicates_by_kind: dict[str, int] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    sent: int = 0
    unacked: int = 0
    lost: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    max_samples: int = 48
    sparkplug: dict[str, int] = field(default_factory=dict)
    """Sparkplug B messages acknowledged, by type (NBIRTH…)."""

    @classmethod
    def start(cls, config: FleetConfig, specs: list[DeviceSpec]) -> Manifest:
        devices = {s.device_id: DeviceEntry(s.profile) for s in specs}
        if config.format == SPARKPLUG:  # the devices behind each edge node
            devices |= {d: DeviceEntry(s.profile) for s in specs for d in device_ids(config, s)}
        ts_unit = "ms" if config.format == SPARKPLUG else config.ts_unit
        return cls(config.seed, config.format, config.start_ms, ts_unit, devices)

    def acked(self, msg: Message) -> None:
        """Count one message the broker acknowledged."""
        if msg.malformed is not None:
            m = msg.malformed
            self.malformed.append(
                {"id": m.id, "topic": msg.topic, "kind": msg.kind, "why": m.why, "id_in_payload": m.id_in_payload}
            )
            return
        if msg.duplicate:
            self.duplicates += 1
            self.duplicates_by_kind[msg.kind] = self.duplicates_by_kind.get(msg.kind, 0) + 1
            return
        if msg.sparkplug:
            self.sparkplug[msg.sparkplug] = self.sparkplug.get(msg.sparkplug, 0) + 1
        entry = self.devices[msg.device_id]
        entry.tally.add(msg)
        self.totals.add(msg)
        per_device = max(1, self.max_samples // len(self.devices))
        if msg.points and entry.samples < per_device and len(self.samples) < self.max_samples and msg.slot % 5 == 3:
            ts_ns, fields = msg.points[-1]
            self.samples.append({"kind": msg.kind, "device_id": msg.device_id, "ts_ns": ts_ns, "fields": dict(fields)})
            entry.samples += 1

    def went_offline(self, device_id: str) -> None:
        self.devices[device_id].offline = True

    @property
    def offline(self) -> list[str]:
        return [d for d, e in self.devices.items() if e.offline]

    def as_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "format": self.format,
            "start_ms": self.start_ms,
            "ts_unit": self.ts_unit,
            "devices": {
                d: {"profile": e.profile, "offline": e.offline, **e.tally.as_dict()} for d, e in self.devices.items()
            },
            "totals": self.totals.as_dict(),
            "malformed": self.malformed,
            "duplicates": self.duplicates,
            "duplicates_by_kind": {k: self.duplicates_by_kind.get(k, 0) for k in KINDS},
            "offline": self.offline,
            "samples": self.samples,
            "sent": self.sent,
            "unacked": self.unacked,
            "lost": self.lost,
            "elapsed_s": round(self.elapsed_s, 3),
            **({"sparkplug": dict(sorted(self.sparkplug.items()))} if self.format == SPARKPLUG else {}),
        }
