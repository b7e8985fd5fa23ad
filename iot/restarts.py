"""When the supervisor starts a dead process again: one deadline per process, never a shared wait.

Pure: :class:`RestartSchedule` is told when a process started and when it exited and answers which
processes are due to start again; the supervisor's single loop polls every child and asks it. Each
process backs off on its own (``initial``, doubling, at most ``maximum``); a process that ran at
least ``healthy_after`` seconds before it exited starts over at ``initial``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    initial: float = 1.0  # seconds before the first restart after a healthy run
    maximum: float = 30.0  # the backoff stops doubling here
    healthy_after: float = 60.0  # a run this long resets the backoff to ``initial``

    def delay(self, quick_exits: int) -> float:
        """The wait before restarting a process that exited ``quick_exits`` times in a row early
        (0: its run was healthy, or it is the first exit)."""
        return min(self.maximum, self.initial * 2.0**quick_exits)


@dataclass(slots=True)
class _Entry:
    started: float
    quick_exits: int = 0  # consecutive exits, each before healthy_after
    due: float | None = None  # restart deadline while the process is down


class RestartSchedule(Generic[K]):
    """Per-process restart deadlines on ``clock`` (monotonic seconds)."""

    def __init__(self, policy: RestartPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._entries: dict[K, _Entry] = {}

    def started(self, key: K) -> None:
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = _Entry(started=self._clock())
        else:
            entry.started, entry.due = self._clock(), None

    def exited(self, key: K) -> float:
        """Record that ``key`` exited now; returns the seconds until it is due to start again."""
        now = self._clock()
        entry = self._entries.setdefault(key, _Entry(started=now))
        if now - entry.started >= self.policy.healthy_after:
            entry.quick_exits = 0
        delay = self.policy.delay(entry.quick_exits)
        entry.quick_exits += 1
        entry.due = now + delay
        return delay

    def waiting(self, key: K) -> bool:
        """``key`` exited and has not been started again."""
        entry = self._entries.get(key)
        return entry is not None and entry.due is not None

    def due(self) -> list[K]:
        """The processes whose restart deadline has passed (still waiting until :meth:`started`)."""
        now = self._clock()
        return [k for k, e in self._entries.items() if e.due is not None and e.due <= now]
