"""One retry schedule for every retrying part: store writers, the MQTT session, notifications, the
worker supervisor."""

from __future__ import annotations

import random


class Backoff:
    """Exponential backoff with jitter (each delay uniform in [d/2, d]), honouring a server's
    ``Retry-After``. ``failed()`` returns the delay before the next try; ``reset()`` on success."""

    def __init__(self, minimum: float, maximum: float, rng: random.Random | None = None) -> None:
        self.minimum, self.maximum = minimum, maximum
        self._current = minimum
        self._rng = rng or random.Random()

    def failed(self, retry_after: float | None = None) -> float:
        delay = self._rng.uniform(self._current / 2, self._current)
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
