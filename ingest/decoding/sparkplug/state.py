"""What a Sparkplug host application must remember between messages, as protocols the decoder is
handed (it stays pure: the composition layer builds the persistent implementation, the registry's
``registry.sparkplug.SqlSparkplugState``, with the registry database), and an in-memory one.

A birth (NBIRTH / DBIRTH) declares every metric: name, alias, datatype. Data messages name metrics
by alias only, so the table of a node (and of each device behind it) must outlive a daemon restart
and be shared by every worker of ``--workers N``: a birth read by one worker names the data another
one reads.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """One metric of a birth: the field it is stored as and its Sparkplug datatype."""

    field: str
    datatype: int


@dataclass(frozen=True, slots=True)
class BirthRecord:
    """The metrics a node or device declared in its last birth: by alias, and by (raw) name for
    data messages that send names; ``bd_seq`` is the node's birth/death sequence (None: a device)."""

    aliases: Mapping[int, MetricInfo] = field(default_factory=dict)
    names: Mapping[str, MetricInfo] = field(default_factory=dict)
    bd_seq: int | None = None


class SparkplugState(Protocol):
    """Births by node and device (``device_id`` is None for the node's own). Thread-safe."""

    def born(self, node_id: str, device_id: str | None, record: BirthRecord, at: float) -> None:
        """Remember ``record`` as the latest birth (a node birth forgets its devices' births)."""
        ...

    def birth(self, node_id: str, device_id: str | None) -> BirthRecord | None:
        """The latest birth, or None when none is known."""
        ...

    def devices(self, node_id: str) -> list[str]:
        """The devices born behind the node since its own latest birth."""
        ...


class Rebirths(Protocol):
    """Asks edge nodes to publish their births again (``NCMD`` ``Node Control/Rebirth``)."""

    def request(self, group: str, edge: str) -> None:
        """Never blocks and never raises; rate-limited per node by the implementation."""
        ...


class MemoryState:
    """A :class:`SparkplugState` in this process only (tests, and a daemon without a registry)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._births: dict[tuple[str, str | None], BirthRecord] = {}
        self._devices: dict[str, set[str]] = {}

    def born(self, node_id: str, device_id: str | None, record: BirthRecord, at: float) -> None:
        with self._lock:
            if device_id is None:
                for d in self._devices.pop(node_id, set()):
                    self._births.pop((node_id, d), None)
            else:
                self._devices.setdefault(node_id, set()).add(device_id)
            self._births[(node_id, device_id)] = record

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
