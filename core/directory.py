"""The device directory as the pipeline reads it: one cache shared by routing and alert evaluation."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from core.model import DeviceEntry

Load = Callable[[], Mapping[str, DeviceEntry]]


class DeviceDirectory:
    """Device id -> :class:`~core.model.DeviceEntry`, as last loaded from the registry.

    ``current()`` is read on every message (the router) and every evaluation (alerts); it is
    replaced whole by :meth:`refresh`, never mutated, so readers need no lock. A failed refresh
    (the registry unreachable) raises and keeps the previous entries: a cache, not a gate.
    """

    def __init__(self, load: Load | None = None, entries: Mapping[str, DeviceEntry] | None = None) -> None:
        self._load = load
        self._entries: Mapping[str, DeviceEntry] = dict(entries or {})

    @classmethod
    def of(cls, entries: Mapping[str, DeviceEntry]) -> DeviceDirectory:
        """A fixed directory (tests, tools): ``refresh`` keeps it as it is."""
        return cls(None, entries)

    def current(self) -> Mapping[str, DeviceEntry]:
        return self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def refresh(self) -> None:
        """Load the directory again; raises what the load raises and then keeps the old entries."""
        if self._load is not None:
            self._entries = self._load()
