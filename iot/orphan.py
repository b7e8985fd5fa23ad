"""A worker (or the alert evaluator) of ``iot ingest run --workers N`` stops when its supervisor is gone.

The supervisor passes its pid (``IOT_SUPERVISOR_PID``). Killed outright (``kill -9``, an OOM kill),
it cannot stop its children, and a restarted supervisor would start a second set beside the
orphans: the same client ids and spool directories, each pair taking the other's broker session
over. So each child watches its parent: once it is no longer the supervisor it was started by, the
child stops as on SIGTERM (buffered batches are written or spooled, nothing is acknowledged that is
not safe), and logs why.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger("iot.ingest")


class SupervisorWatch:
    """Calls ``stop`` once the process's parent is no longer ``supervisor`` (polled every ``every`` s)."""

    def __init__(self, supervisor: int, stop: Callable[[], None], every: float = 0.5) -> None:
        self.supervisor = supervisor
        self._stop = stop
        self.every = every
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor-watch", daemon=True)

    def start(self) -> SupervisorWatch:
        self._thread.start()
        return self

    def close(self) -> None:
        self._done.set()

    def _run(self) -> None:
        while not self._done.wait(self.every):
            if os.getppid() != self.supervisor:
                log.error("the supervisor (pid %d) is gone: stopping this process", self.supervisor)
                self._stop()
                return
