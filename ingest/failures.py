"""What went wrong with a store or a daemon step, sorted into what an operator has to know.

Pure: :func:`classify` turns any exception into a :class:`Problem`; :class:`Backoff` computes
the jittered retry schedule. The writer and the ticker log, count and report these.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from core.stores import StoreConfigError, StoreNeedsOperator, StoreUnavailable

UNAVAILABLE = "unavailable"  # cannot reach / transient: heals by waiting
NEEDS_OPERATOR = "needs_operator"  # refused for a reason waiting will not fix
UNEXPECTED = "unexpected"  # any other exception: a bug or an unmapped error

_MESSAGE_MAX = 300


@dataclass(frozen=True, slots=True)
class Problem:
    """One ongoing failure: its kind, the exception class, its first line, and when it began."""

    kind: str
    error: str
    message: str
    since: float

    def describe(self) -> str:
        what = {
            UNAVAILABLE: "unavailable (retrying)",
            NEEDS_OPERATOR: "refused, waiting will not fix it: operator action needed (data kept, retrying)",
            UNEXPECTED: "unexpected error (data kept, retrying)",
        }[self.kind]
        return f"{what}: {self.error}: {self.message}"

    def same(self, other: Problem | None) -> bool:
        """The same failure continuing (logged once, not again on every retry)."""
        return other is not None and (other.kind, other.error) == (self.kind, self.error)


def classify(e: BaseException, now: float | None = None) -> Problem:
    if isinstance(e, StoreNeedsOperator | StoreConfigError):
        kind = NEEDS_OPERATOR
    elif isinstance(e, StoreUnavailable):
        kind = UNAVAILABLE
    else:
        kind = UNEXPECTED
    text = str(e).strip()
    first = text.splitlines()[0] if text else ""
    return Problem(kind, type(e).__name__, first[:_MESSAGE_MAX], time.time() if now is None else now)


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
