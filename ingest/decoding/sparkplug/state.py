"""In-memory Sparkplug state and a rebirth recorder; the protocols are ``core.sparkplug``'s."""

from __future__ import annotations

import threading

from core.sparkplug import BirthRecord, MetricInfo, Rebirths, SparkplugState

__all__ = ["BirthRecord", "MemoryState", "MetricInfo", "NoRebirths", "Rebirths", "SparkplugState"]


class MemoryState:
    """A :class:`SparkplugState` in this process only (tests, and a daemon without a registry)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._births: dict[tuple[str, str | None], BirthRecord] = {}
        self._devices: dict[str, set[str]] = {}
        self._born_at: dict[tuple[str, str | None], float] = {}

    def born(self, node_id: str, device_id: str | None, record: BirthRecord, at: float) -> None:
        with self._lock:
            if device_id is None:
                devices = self._devices.get(node_id, set())
                for d in [d for d in devices if self._born_at.get((node_id, d), 0.0) < at]:
                    devices.discard(d)
                    self._births.pop((node_id, d), None)
            else:
                self._devices.setdefault(node_id, set()).add(device_id)
            self._births[(node_id, device_id)] = record
            self._born_at[(node_id, device_id)] = at

    def birth(self, node_id: str, device_id: str | None) -> BirthRecord | None:
        return self._births.get((node_id, device_id))

    def devices(self, node_id: str) -> list[str]:
        with self._lock:
            return sorted(self._devices.get(node_id, ()))


class NoRebirths:
    """Records the requests (tests; a decoder without a host application's publisher)."""

    def __init__(self) -> None:
        self.requested: list[tuple[str, str]] = []

    def request(self, group: str, edge: str) -> None:
        self.requested.append((group, edge))
