"""Where batches go: one small object per destination behind one Protocol, and the stores they wrap.

Lifecycle: the composition layer (``iot.service``) opens the stores and builds
:class:`Destinations` from them; each writer thread calls its destination's ``write`` per batch
(the store is connected on first use and again after a failed connect) and ``close`` once at
shutdown. ``write`` raises what the store raises (:class:`~core.stores.StoreUnavailable` and
friends: the writer spools and retries) and returns the items refused for good, by index into
``batch.items``, each with a reason (the writer dead-letters exactly those).

``StoreDestination.prepare`` is a destination's CPU work for a batch that needs no connection and no store state
(a line-protocol store encodes the points: :class:`~ingest.stores.partial_writes.Encoded`). The
writer's prepare stage (:mod:`ingest.writing.ahead`) runs it on its own thread, so the next batch
is encoded while the store takes this one; ``write`` takes what it made, or ``None`` (a spooled
batch, a failed prepare, a destination with nothing to prepare) and then does all the work itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from core.model import DeadLetter, DeviceEntry, GatewayClaim, Point, StatusChange
from core.stores import DocumentStore, StoreUnavailable, TimeSeriesStore
from ingest.routing import DEADLETTERS, DOCUMENTS, REGISTRY, TIMESERIES, Batch
from ingest.stores.partial_writes import Encoded

log = logging.getLogger("iot.ingest")

Refused = list[tuple[int, str]]
"""Items a store refused for good: (index into ``batch.items``, reason)."""


class Destination(Protocol):
    """One destination's writes: ``name`` is one of :data:`ingest.routing.DESTINATIONS`."""

    @property
    def name(self) -> str: ...
    def write(self, batch: Batch, prepared: Encoded | None = None) -> Refused: ...
    def close(self) -> None: ...


class DirectoryStore(Protocol):
    """The registry as the daemon uses it (``registry.directory.RegistryStore``)."""

    def connect(self) -> None: ...
    def devices(self) -> Mapping[str, DeviceEntry]: ...
    def register(self, devices: Iterable[tuple[str, str]], gateways: Mapping[str, str] | None = None) -> None: ...
    def record_claims(self, claims: Sequence[GatewayClaim]) -> None: ...
    def record_activity(self, last_seen: Mapping[str, float], status: Sequence[StatusChange]) -> None: ...
    def record_firmware(self, versions: Mapping[str, str]) -> None: ...
    def close(self) -> None: ...


class LetterStore(Protocol):
    """The dead-letter store as the daemon uses it (``registry.deadletters.DeadLetterStore``)."""

    def connect(self) -> None: ...
    def write(self, letters: Sequence[DeadLetter]) -> None: ...
    def close(self) -> None: ...


class Connectable(Protocol):
    def connect(self) -> None: ...
    def close(self) -> None: ...


S = TypeVar("S", bound=Connectable)


class Connected(Generic[S]):
    """A store connected lazily, and again after a failed connect (a store may be down at start).

    ``OSError`` becomes :class:`StoreUnavailable`; anything else propagates as raised, for the
    writer (or ticker) to classify, report and retry."""

    def __init__(self, store: S) -> None:
        self.store = store
        self.ok = False

    def __call__(self) -> S:
        if not self.ok:
            try:
                self.store.connect()
            except OSError as e:
                raise StoreUnavailable(str(e)) from e
            self.ok = True
        return self.store

    def close(self) -> None:
        try:
            self.store.close()
        except Exception as e:
            log.debug("closing %s: %s", type(self.store).__name__, e)


def by_index(items: Sequence[object], refused: Sequence[tuple[object, str]]) -> Refused:
    """A store's refusals (the refused objects themselves) as indices into ``items``."""
    if not refused:
        return []
    where = {id(item): i for i, item in enumerate(items)}
    return [(where[id(item)], reason) for item, reason in refused if id(item) in where]


class Writes(Connectable, Protocol):
    """A store that takes a batch's items and returns the ones it refused for good (with why)."""

    def write(self, items: Sequence[Any]) -> Sequence[tuple[Any, str]]: ...


@runtime_checkable
class Prepares(Protocol):
    """A line-protocol store (``ingest.stores.influxdb1``/``influxdb2``): encodes points ahead of
    the write (pure, no connection needed) and writes them with that encoding."""

    def prepare(self, points: Sequence[Point]) -> Encoded: ...
    def write(self, points: Sequence[Point], encoded: Encoded | None = None) -> list[tuple[Point, str]]: ...


W = TypeVar("W", bound=Writes)


class StoreDestination(Connected[W]):
    """The time-series or document destination: the batch's items go to the store as they are
    (with their line protocol made by :meth:`prepare`, for a store that :class:`Prepares`)."""

    def __init__(self, name: str, store: W) -> None:
        super().__init__(store)
        self.name = name
        self._encodes = store if isinstance(store, Prepares) else None

    @property
    def prepares(self) -> bool:
        """True if :meth:`prepare` makes anything (the writer then runs a prepare stage)."""
        return self._encodes is not None

    def prepare(self, batch: Batch) -> Encoded | None:
        return self._encodes.prepare(batch.items) if self._encodes is not None else None

    def write(self, batch: Batch, prepared: Encoded | None = None) -> Refused:
        store = self()
        if self._encodes is not None and prepared is not None:
            return by_index(batch.items, self._encodes.write(batch.items, prepared))
        return by_index(batch.items, store.write(batch.items))


class RegistryDestination(Connected[DirectoryStore]):
    """Status changes (the items) and the batch's :class:`~core.model.RegistryActivity`."""

    name = REGISTRY

    def write(self, batch: Batch, prepared: Encoded | None = None) -> Refused:
        store, activity = self(), batch.activity
        if activity is not None and activity.register:
            store.register(list(activity.register.items()), activity.gateways)
        store.record_activity(activity.last_seen if activity is not None else {}, batch.items)
        if activity is not None and activity.firmware:
            store.record_firmware(activity.firmware)
        if activity is not None and activity.claims:
            store.record_claims(activity.claims)
        return []

    def devices(self) -> Mapping[str, DeviceEntry]:
        """The device directory, for the daemon's cache."""
        return self().devices()


class DeadLetterDestination(Connected[LetterStore]):
    name = DEADLETTERS

    def write(self, batch: Batch, prepared: Encoded | None = None) -> Refused:
        self().write(batch.items)
        return []


@dataclass(frozen=True)
class Destinations:
    """The four destinations a daemon writes to, in shutdown order."""

    timeseries: StoreDestination[TimeSeriesStore]
    documents: StoreDestination[DocumentStore]
    registry: RegistryDestination
    deadletters: DeadLetterDestination

    @classmethod
    def of(
        cls, timeseries: TimeSeriesStore, documents: DocumentStore, registry: DirectoryStore, deadletters: LetterStore
    ) -> Destinations:
        return cls(
            StoreDestination(TIMESERIES, timeseries),
            StoreDestination(DOCUMENTS, documents),
            RegistryDestination(registry),
            DeadLetterDestination(deadletters),
        )

    def all(self) -> tuple[Destination, ...]:
        return (self.timeseries, self.documents, self.registry, self.deadletters)
