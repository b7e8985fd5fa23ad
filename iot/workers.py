"""`iot ingest run --workers N`: N daemon processes joined by one MQTT shared subscription, supervised.

Lifecycle: ``run_workers(settings, n)`` starts worker k (0..n-1) as its own ``iot ingest run`` process
with client id ``{client_id}-{k}`` (and, with ``IOT_BROKER_ACCOUNTS=own``, the default, broker
account ``{user}-{k}``: :mod:`core.broker_accounts`), its own persistent session and spool (``{spool}/worker-{k}``),
metrics on ``metrics_port + k``, all subscribed to ``$share/{client_id}/{topic_root}/#`` so the broker
spreads messages over them. A worker that exits unexpectedly is started again (same client id, so
its persistent session and anything the broker kept for it come back) on its own schedule
(:mod:`iot.restarts`: 1 s doubling to 30 s, back to 1 s after a run of 60 s), while the others
keep running and restarting; SIGTERM/SIGINT is passed to every worker, each drains (flush,
acknowledge) and the supervisor exits 0 when all did. Secrets are not copied into the workers'
environments: they get ``IOT_SECRETS_DIR`` (the path) and read the files themselves.

Refused with a clear message: the embedded broker (amqtt has no shared subscriptions) and the paho
receive path. Embedded stores are SQLite files the workers share, created (and the registry
migrated) once by the supervisor before any worker starts; a lock conflict is a transient store
failure (spooled and retried); server stores scale better.

Alerts: workers run with ``IOT_ROLE=ingest`` (no alert observer) and the supervisor also runs one
alert evaluator (:mod:`iot.alert_role`) on its own non-shared persistent session, created before
any worker starts and restarted like a worker, so every rule sees all of a device's messages in order.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.config import SECRET_FIELDS, Settings
from iot import alert_role
from iot.logs import EVERY, configure_logging
from iot.restarts import RestartPolicy, RestartSchedule
from iot.service import build_resources

log = logging.getLogger("iot.ingest")


class WorkersRefused(ValueError):
    """The configuration cannot run several workers (message says why and what to do)."""


def check(settings: Settings, n: int) -> None:
    if n <= 1:
        return
    if settings.broker_url in ("", "embedded"):
        raise WorkersRefused(
            "--workers > 1 needs a broker with shared subscriptions (e.g. Mosquitto 2): "
            "the embedded broker cannot share; set IOT_BROKER_URL=mqtt://host:port"
        )
    if settings.mqtt_client != "native":
        raise WorkersRefused("--workers > 1 needs IOT_MQTT_CLIENT=native (the shared subscription is native)")


SECRETS_DIR = "IOT_SECRETS_DIR"


def _inherited(key: str) -> bool:
    """A variable of the supervisor's environment that a worker gets unchanged: anything not ours,
    the path of the secrets directory, and a secret the operator set in the environment (the worker
    reads it from the same place; the supervisor adds no secret value to any environment)."""
    upper = key.upper()
    if not upper.startswith("IOT_"):
        return True
    return upper == SECRETS_DIR or upper.removeprefix("IOT_").lower() in SECRET_FIELDS


def worker_env(settings: Settings, k: int) -> dict[str, str]:
    """The environment of worker ``k``: every setting but the secrets as ``IOT_*``, its own identity
    and spool. Secrets are not copied: the worker reads them as the supervisor did, from files in
    ``IOT_SECRETS_DIR`` (passed as the path), ``.env`` (same working directory) or the environment."""
    env = {key: val for key, val in os.environ.items() if _inherited(key)}
    if SECRETS_DIR in env:
        env[SECRETS_DIR] = os.path.abspath(env[SECRETS_DIR])
    for name, value in settings.model_dump(exclude=set(SECRET_FIELDS)).items():
        if value is None:
            continue
        if isinstance(value, dict):  # core.settings_sources reads complex values as JSON
            value = json.dumps(value)
        if isinstance(value, list):  # e.g. notify_allowed_networks: comma-separated
            value = ",".join(str(x) for x in value)
        env[f"IOT_{name.upper()}"] = str(value)
    env["IOT_CLIENT_ID"] = f"{settings.client_id}-{k}"
    env["IOT_BROKER_ACCOUNT"] = str(k) if settings.broker_accounts == "own" else ""
    env["IOT_SHARE_GROUP"] = settings.client_id
    env["IOT_SPOOL_DIR"] = str(settings.resolved_spool_dir() / f"worker-{k}")
    env["IOT_METRICS_PORT"] = str(settings.metrics_port + k if settings.metrics_port else 0)
    env["IOT_WORKERS"] = "1"
    env["IOT_SUPERVISOR_PID"] = str(os.getpid())  # the child stops if this process is gone (iot.orphan)
    env["IOT_ROLE"] = "ingest"  # alerts are the evaluator's (iot.alert_role)
    return env


EVALUATOR = -1
"""The alert evaluator's key among the supervised processes (workers are 0..n-1)."""


class Supervisor:
    """Starts the evaluator and the ``n`` workers and restarts each one that exits on its own
    schedule (:class:`RestartSchedule`): one loop polls every process, nothing waits out a backoff."""

    def __init__(
        self,
        settings: Settings,
        n: int,
        argv: list[str] | None = None,
        policy: RestartPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings, self.n = settings, n
        self.argv = argv or [sys.executable, "-m", "iot", "ingest", "run"]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.schedule: RestartSchedule[int] = RestartSchedule(policy or RestartPolicy(), clock)
        self.restarts = 0
        self._stop = threading.Event()

    def start(self, k: int) -> None:
        if k == EVALUATOR:
            env = alert_role.evaluator_env(self.settings, worker_env(self.settings, 0), self.n)
            self.procs[k] = subprocess.Popen(self.argv, env=env)
            log.info("alert evaluator started (pid %d, client id %s)", self.procs[k].pid, env["IOT_CLIENT_ID"])
        else:
            self.procs[k] = subprocess.Popen(self.argv, env=worker_env(self.settings, k))
            log.info("worker %d started (pid %d, client id %s-%d)", k, self.procs[k].pid, self.settings.client_id, k)
        self.schedule.started(k)

    def stop(self) -> None:
        self._stop.set()

    def tick(self) -> None:
        """Note every process that exited since the last tick and start every one that is due."""
        for k, p in self.procs.items():
            if self.schedule.waiting(k):
                continue
            rc = p.poll()
            if rc is None:
                continue
            delay = self.schedule.exited(k)
            what = "alert evaluator" if k == EVALUATOR else f"worker {k}"
            log.error("%s exited with %s; restarting in %.1f s", what, rc, delay, extra={EVERY: True})
        for k in self.schedule.due():
            self.restarts += 1
            self.start(k)

    def run(self) -> int:
        if not alert_role.ensure_session(self.settings, self._stop):  # before any worker takes a message
            return 0
        for k in (EVALUATOR, *range(self.n)):
            self.start(k)
        while not self._stop.wait(0.2):
            self.tick()
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        rcs = [p.wait() for p in self.procs.values()]
        log.info("all %d workers and the alert evaluator stopped (exit codes %s)", self.n, rcs)
        return 0 if all(rc == 0 for rc in rcs) else 1


def prepare_stores(settings: Settings) -> None:
    """Create embedded stores and migrate the embedded registry once, before the workers start:
    N processes creating the same files at once race (montydb's storage config, Alembic)."""

    res = build_resources(settings)  # migrates an embedded registry
    for url, store in ((settings.timeseries_url, res.timeseries), (settings.documents_url, res.documents)):
        if url in ("", "embedded"):  # server stores may be down now: the workers retry them
            try:
                store.connect()
            finally:
                store.close()
    res.registry.engine.dispose()


def run_workers(settings: Settings, n: int) -> int:
    """Run ``n`` supervised workers until SIGTERM/SIGINT; the exit code is 0 if every worker drained cleanly."""
    configure_logging(settings.log_format, settings.log_level, settings.log_repeat_interval)
    check(settings, n)
    prepare_stores(settings)
    Path(settings.resolved_spool_dir()).mkdir(parents=True, exist_ok=True)
    sup = Supervisor(settings, n)

    def handler(signum: int, _frame: Any) -> None:
        log.info("signal %s: stopping %d workers", signal.Signals(signum).name, n)
        sup.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    started = time.monotonic()
    rc = sup.run()
    log.info("supervisor ran %.0f s, %d restart(s)", time.monotonic() - started, sup.restarts)
    return rc
