"""One overall deadline per notification attempt: connect, TLS, sending and reading the reply.

A socket timeout bounds each read on its own, so a receiver that trickles a byte every few seconds
never trips it and can hold an attempt for ever. A :class:`Deadline` bounds the whole attempt:
every blocking step starts with the time that is left as its timeout, and a watchdog shuts the
attempt's sockets down when the time is up, which ends whatever read or write is in progress
(the sender then reports the deadline). The watchdog holds a duplicate of each socket, so it
reaches the connection through a TLS wrap and never touches a descriptor someone else reuses.

Lifecycle: one ``Deadline`` per attempt; ``with deadline.watch() as w`` around the attempt;
connections handed to ``w.add`` (the transports connect through the address guard,
:mod:`registry.notify.netguard`, with ``deadline.remaining()`` as the timeout) are shut down at the
deadline.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class DeadlineExceeded(TimeoutError):
    """The attempt ran out of its overall time."""


class Deadline:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds
        self.expired = False

    def remaining(self) -> float:
        """Seconds left; raises :class:`DeadlineExceeded` when none are."""
        left = self._end - self._clock()
        if left <= 0:
            self.expired = True
            raise DeadlineExceeded(f"deadline of {self.seconds:g} s exceeded")
        return left

    def ended(self, e: BaseException) -> bool:
        """Whether the deadline ended the attempt that raised ``e``: the watchdog fired, the time is
        up, or ``e`` is a socket timeout (every timeout an attempt sets is the time that was left)."""
        if self.expired or self._clock() >= self._end:
            return True
        return isinstance(e, TimeoutError) or isinstance(getattr(e, "reason", None), TimeoutError)

    def describe(self) -> str:
        return f"deadline of {self.seconds:g} s exceeded"

    @contextmanager
    def watch(self) -> Iterator[Watch]:
        """Shut down every socket added to the yielded :class:`Watch` once the deadline passes."""
        w = Watch(self)
        done = threading.Event()

        def guard() -> None:
            if done.wait(max(0.0, self._end - self._clock())):
                return
            self.expired = True
            while True:  # again until the attempt ends: a socket added late is shut down too
                w.shutdown()
                if done.wait(0.05):
                    return

        t = threading.Thread(target=guard, name="notify-deadline", daemon=True)
        t.start()
        try:
            yield w
        finally:
            done.set()
            t.join()
            w.close()


class Watch:
    """The sockets of one attempt (duplicates, owned here: shut down at the deadline, closed after)."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()

    def add(self, sock: socket.socket) -> socket.socket:
        dup = sock.dup()
        with self._lock:
            self._socks.append(dup)
        return sock

    def connect(
        self, address: tuple[str, int], timeout: float | None = None, source_address: Any = None
    ) -> socket.socket:
        """``socket.create_connection`` within the time left; the socket is watched."""
        left = self.deadline.remaining()
        wait = left if timeout is None else min(float(timeout), left)
        return self.add(socket.create_connection(address, wait, source_address))

    def shutdown(self) -> None:
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            with contextlib.suppress(OSError):  # not connected (any more)
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            s.close()
