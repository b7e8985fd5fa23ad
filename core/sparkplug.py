"""What a Sparkplug host application must remember between messages, as protocols the decoder is
handed (it stays pure: the composition layer builds the persistent implementation, the registry's
``registry.sparkplug.SqlSparkplugState``, with the registry database; ``ingest.decoding.sparkplug.state``
has an in-memory one). Here in core so that both ingest and registry may name them.

A birth (NBIRTH / DBIRTH) declares every metric: name, alias, datatype. Data messages name metrics
by alias only, so the table of a node (and of each device behind it) must outlive a daemon restart
and be shared by every worker of ``--workers N``: a birth read by one worker names the data another
one reads.
"""

from __future__ import annotations

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
        """Remember ``record`` as the latest birth, born at ``at`` (epoch seconds: the payload's
        timestamp, else the arrival time). A node birth forgets its devices' births made *before* it:
        with ``--workers N`` a device's birth may be filed before its node's, by another worker."""
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
