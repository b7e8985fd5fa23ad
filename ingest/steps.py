"""The daemon's recurring steps (flush, directory refresh, observer ticks, message handling):
run guarded, with their ongoing failures kept for /healthz."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ingest.metrics import Metrics
from ingest.writing.failures import UNEXPECTED, Problem, classify

log = logging.getLogger("iot.ingest")


class Steps:
    """Runs one step at a time; no exception escapes. An unexpected one is logged once per episode
    with its traceback, counted (``iot_step_errors_total``), and kept in :attr:`problems` until the
    step succeeds again. Used from the ticker and the receive thread (dict updates are atomic)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.problems: dict[str, Problem] = {}  # steps failing now, by name

    def run(self, step: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as e:
            self.failed(step, e)
        else:
            self.succeeded(step)

    def failed(self, step: str, e: Exception) -> None:
        p = classify(e)
        self.metrics.inc("iot_step_errors_total", step=step, error=p.error)
        if not p.same(self.problems.get(step)):
            log.error(
                "%s failed: %s: %s; retrying", step, p.error, p.message, exc_info=e if p.kind == UNEXPECTED else None
            )
            self.problems[step] = p

    def succeeded(self, step: str) -> None:
        if step in self.problems and self.problems.pop(step, None) is not None:
            log.warning("%s works again", step)
