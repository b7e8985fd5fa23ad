"""The receive seam: what the daemon is handed to get deliveries and to acknowledge them.

A :class:`Receiver` is built with its options (nothing is swapped afterwards); ``start(handler)``
starts its thread, which calls the :class:`~ingest.mqtt.session.Handler` with each read's
deliveries as :class:`~ingest.mqtt.packets.Publish` objects, and with connection events;
``ack(mids)`` (any thread) releases deliveries in the order given; ``stop()`` disconnects and joins.
Two implement it: :class:`NativeReceiver` (the native session, ``IOT_MQTT_CLIENT=native``, the
default) and :class:`ingest.mqtt.paho.PahoReceiver` (``paho``). Nothing else knows which one runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from ingest.mqtt.options import tune_gc
from ingest.mqtt.session import Handler, Options, Session


class Receiver(Protocol):
    def start(self, handler: Handler) -> None: ...
    def ack(self, mids: Iterable[int]) -> None: ...
    def stop(self) -> None: ...

    @property
    def thread_alive(self) -> bool:
        """The receive thread runs (for tests and health)."""
        ...


class NativeReceiver:
    """The native session (``ingest.mqtt.session``): one thread, one read's deliveries per call."""

    def __init__(self, options: Options, *, tune_collector: bool = True) -> None:
        self.options = options
        self.tune_collector = tune_collector
        self.session: Session | None = None

    def start(self, handler: Handler) -> None:
        if self.tune_collector:
            tune_gc()
        self.session = Session(self.options, handler)
        self.session.start()

    def ack(self, mids: Iterable[int]) -> None:
        if self.session is not None:
            self.session.ack(mids)

    def stop(self) -> None:
        if self.session is not None:
            self.session.stop()

    @property
    def thread_alive(self) -> bool:
        t = self.session._thread if self.session is not None else None
        return t is not None and t.is_alive()
