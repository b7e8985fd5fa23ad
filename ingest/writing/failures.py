"""What went wrong with a store or a daemon step, sorted into what an operator has to know.

Pure: :func:`classify` turns any exception into a :class:`Problem`; the writer and the ticker log,
count and report these (their retry schedule is :class:`core.backoff.Backoff`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from core.stores import StoreConfigError, StoreNeedsOperator, StoreUnavailable


class ProblemKind(StrEnum):
    UNAVAILABLE = "unavailable"  # cannot reach / transient: heals by waiting
    NEEDS_OPERATOR = "needs_operator"  # refused for a reason waiting will not fix
    UNEXPECTED = "unexpected"  # any other exception: a bug or an unmapped error


UNAVAILABLE, NEEDS_OPERATOR, UNEXPECTED = ProblemKind.UNAVAILABLE, ProblemKind.NEEDS_OPERATOR, ProblemKind.UNEXPECTED

_MESSAGE_MAX = 300


@dataclass(frozen=True, slots=True)
class Problem:
    """One ongoing failure: its kind, the exception class, its first line, and when it began."""

    kind: ProblemKind
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
