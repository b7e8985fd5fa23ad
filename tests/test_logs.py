"""Daemon logging: JSON lines or text at a chosen level, and repeated warnings rate-limited per
message template (a store outage logs the notifier's warning once, not every poll)."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from iot.logs import EVERY, DaemonHandler, JsonFormatter, RepeatFilter, configure_logging
from registry.db import make_engine
from registry.notify import notifier as notifier_module
from registry.notify.notifier import Notifier
from tests.servers import free_port, wait_for


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


class Collect(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__()
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


def record(msg: str, *args: object, level: int = logging.WARNING, name: str = "iot.x") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_repeats_of_a_template_pass_once_per_interval_with_the_count_dropped() -> None:
    now = [100.0]
    f = RepeatFilter(30, clock=lambda: now[0])
    assert f.filter(record("store %s down", "a"))
    assert [f.filter(record("store %s down", x)) for x in "bcd"] == [False, False, False]
    assert f.filter(record("another %s", "a"))  # its own template
    assert f.filter(record("store %s down", "e", level=logging.INFO))  # below WARNING: never limited
    assert f.filter(record("store %s down", "f", level=logging.ERROR))  # another level: its own count
    now[0] += 29.9
    assert not f.filter(record("store %s down", "g"))
    now[0] += 0.2
    passed = record("store %s down", "h")
    assert f.filter(passed) and passed.suppressed == 4  # type: ignore[attr-defined]
    now[0] += 31
    quiet = record("store %s down", "i")
    assert f.filter(quiet) and not hasattr(quiet, "suppressed")


def test_a_record_marked_every_is_never_limited() -> None:
    """A process that died is worth a line each time (the supervisor marks those records)."""
    f = RepeatFilter(30, clock=lambda: 100.0)
    exits = [record("%s exited with %s", f"worker {k}", -9, level=logging.ERROR) for k in range(3)]
    for r in exits:
        setattr(r, EVERY, True)
    assert [f.filter(r) for r in exits] == [True, True, True]
    assert [f.filter(record("%s exited with %s", "w", -9, level=logging.ERROR)) for _ in range(2)] == [True, False]


def test_json_lines_carry_ts_level_logger_message_extras_and_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        r = logging.LogRecord("iot.ingest", logging.ERROR, __file__, 1, "device %s said %r", ("d1", "a\nb"), None)
        r.exc_info = sys.exc_info()
    r.dest = "timeseries"
    line = JsonFormatter().format(r)
    assert "\n" not in line  # device text cannot forge a second log line
    doc = json.loads(line)
    assert doc["level"] == "ERROR" and doc["logger"] == "iot.ingest" and doc["message"] == "device d1 said 'a\\nb'"
    assert doc["ts"].endswith("Z") and doc["dest"] == "timeseries"
    assert "ValueError: boom" in doc["exc"]
    assert "args" not in doc and "msg" not in doc


def test_a_registry_outage_logs_the_notifier_warning_once(restore_root: None) -> None:
    out = io.StringIO()
    configure_logging("json", "INFO", repeat_interval=3600, stream=out)
    seen: list[logging.LogRecord] = []
    notifier_log = notifier_module.log
    counter = Collect(seen)
    notifier_log.addHandler(counter)
    engine = make_engine(f"postgresql+psycopg://iot@127.0.0.1:{free_port()}/gone?connect_timeout=2")
    n = Notifier(engine, {}, poll_s=0.01).start()
    try:
        wait_for(lambda: len(seen) >= 5, 30, "five failed notifier rounds")
    finally:
        n.stop()
        notifier_log.removeHandler(counter)
        engine.dispose()
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    rounds = [x for x in lines if x["message"].startswith("notifier round failed")]
    assert len(rounds) == 1 and rounds[0]["level"] == "WARNING", lines


def test_configure_logging_replaces_its_handler_and_sets_the_level(restore_root: None) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("text", "INFO", stream=first)
    configure_logging("json", "warning", stream=second)
    assert sum(isinstance(h, DaemonHandler) for h in logging.getLogger().handlers) == 1
    logging.getLogger("iot.t").info("not shown")
    logging.getLogger("iot.t").warning("shown %d", 1)
    assert first.getvalue() == ""
    assert [json.loads(x)["message"] for x in second.getvalue().splitlines()] == ["shown 1"]


def iot(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iot", *args], capture_output=True, text=True, timeout=60, env={**os.environ, **env}
    )


def test_ingest_run_refuses_a_bad_log_level_in_one_line(tmp_path: Path) -> None:
    done = iot("ingest", "run", "--log-level", "LOUD", env={"IOT_DATA_DIR": str(tmp_path)})
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip().splitlines()[0]]
    assert "IOT_LOG_LEVEL" in done.stderr
    bad = iot("ingest", "run", "--log-format", "xml", env={"IOT_DATA_DIR": str(tmp_path)})
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "xml" in bad.stderr
