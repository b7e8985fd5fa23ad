"""One retry schedule for every retrying part: store writers, the MQTT session, notifications, the
worker supervisor."""

from __future__ import annotations

import random
from collections.abc import Callable


def jittered(ceiling: float, rand: Callable[[], float]) -> float:
    """A delay uniform in [ceiling/2, ceiling]: retries of many clients never move in lockstep."""
    return ceiling * (0.5 + rand() / 2)


def ceiling(attempt: int, minimum: float, maximum: float) -> float:
    """The upper bound of the ``attempt``-th (1-based) delay: ``min(maximum, minimum * 2**(attempt-1))``."""
    return float(min(maximum, minimum * 2 ** max(0, attempt - 1)))


class Backoff:
    """Exponential backoff with jitter (each delay uniform in [d/2, d]), honouring a server's
    ``Retry-After``. ``failed()`` returns the delay before the next try; ``reset()`` on success."""

    def __init__(self, minimum: float, maximum: float, rng: random.Random | None = None) -> None:
        self.minimum, self.maximum = minimum, maximum
        self._current = minimum
        self._rng = rng or random.Random()

    def failed(self, retry_after: float | None = None) -> float:
        delay = jittered(self._current, self._rng.random)
        self._current = min(self.maximum, self._current * 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, 3600.0))
        return delay

    def reset(self) -> None:
        self._current = self.minimum

    @property
    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        return self._current
