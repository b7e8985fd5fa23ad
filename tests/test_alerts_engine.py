"""The pure alert engine: thresholds with hold and hysteresis, rate, nodata, events, scopes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from core.model import Point, StatusChange
from registry.alerts.engine import RuleEngine, Transition
from registry.alerts.kinds import SPECS, describe, validate
from registry.alerts.rules import OPEN, RESOLVE, UPDATE, Rule, RuleError, RuleKind, cleared


@dataclass(frozen=True)
class Info:
    id: str
    type: str
    site: str | None
    status: str = "active"
    gateway: str | None = None


DEVICES = {
    "d1": Info("d1", "thermo", "paris"),
    "d2": Info("d2", "pump", "lyon"),
}
HOT = Rule(
    id=1,
    name="hot",
    kind=RuleKind.THRESHOLD,
    severity="major",
    field="temperature",
    op=">",
    threshold=80,
    hold_s=60,
    hysteresis=2,
)


def pt(
    t: float,
    dev: str = "d1",
    measurement: str = "sensor_readings",
    tags: dict[str, str] | None = None,
    **fields: float | str,
) -> Point:
    return Point(measurement, dev, dict(fields), int(t * 1e9), tags or {})


def run(engine: RuleEngine, t: float, dev: str = "d1", **fields: float) -> list[Transition]:
    return engine.observe([Point("sensor_readings", dev, dict(fields), int(t * 1e9))], t, DEVICES)


def actions(ts: list[Transition]) -> list[str]:
    return [t.action for t in ts]


def test_threshold_needs_hold_then_opens_once_and_updates() -> None:
    e = RuleEngine([HOT])
    assert run(e, 0, temperature=85) == []
    assert run(e, 30, temperature=90) == []
    opened = run(e, 60, temperature=86)
    assert actions(opened) == [OPEN]
    o = opened[0]
    assert (o.rule_id, o.device_id, o.value, o.at, o.severity, o.site) == (1, "d1", 86, 60, "major", "paris")
    assert "temperature > 80 for 60s" in o.message
    assert actions(run(e, 70, temperature=95)) == [UPDATE]
    assert actions(run(e, 80, temperature=81)) == [UPDATE]


def test_threshold_run_broken_restarts_hold() -> None:
    e = RuleEngine([HOT])
    run(e, 0, temperature=85)
    assert run(e, 50, temperature=70) == []
    assert run(e, 100, temperature=85) == []  # the run starts again at 100
    assert run(e, 140, temperature=85) == []
    assert actions(run(e, 160, temperature=85)) == [OPEN]


def test_hysteresis_band_keeps_alert_until_clearly_back() -> None:
    e = RuleEngine([HOT])
    run(e, 0, temperature=85)
    run(e, 60, temperature=85)
    assert run(e, 70, temperature=79) == []  # under 80 but inside the 2-degree band
    assert run(e, 80, temperature=78) == []  # 78 is not < 78
    res = run(e, 90, temperature=77.9)
    assert actions(res) == [RESOLVE] and res[0].value == 77.9
    assert run(e, 100, temperature=85) == []  # a new breach needs the hold again


def test_cleared_for_every_operator() -> None:
    assert cleared("<", 12.5, 10, 2) and not cleared("<", 11, 10, 2)
    assert cleared("==", 5, 3, 1) and not cleared("==", 4, 3, 1)
    assert cleared("!=", 3.5, 3, 1) and not cleared("!=", 5, 3, 1)
    assert cleared(">=", 80, 80.5, 0) and not cleared(">=", 80, 80, 0)


def test_out_of_order_point_is_ignored() -> None:
    e = RuleEngine(
        [Rule(id=1, name="hot", kind=RuleKind.THRESHOLD, severity="major", field="temperature", op=">", threshold=80)]
    )
    assert actions(run(e, 10, temperature=90)) == [OPEN]
    assert e.observe([pt(5, temperature=20)], 11, DEVICES) == []  # older than the newest point


def test_hold_expires_on_tick_when_device_goes_quiet_while_breaching() -> None:
    e = RuleEngine([HOT])
    run(e, 0, temperature=85)
    assert e.tick(30, DEVICES) == []
    ticked = e.tick(61, DEVICES)
    assert actions(ticked) == [OPEN] and ticked[0].value == 85


def test_hold_on_tick_counts_from_arrival_for_replayed_data() -> None:
    e = RuleEngine([HOT])
    assert e.observe([pt(0, temperature=85)], 10_000, DEVICES) == []  # hours late (a spool)
    assert e.tick(10_030, DEVICES) == []
    assert actions(e.tick(10_060, DEVICES)) == [OPEN]


def test_measurement_filter_and_string_fields() -> None:
    r = Rule(
        id=2,
        name="cpu",
        kind=RuleKind.THRESHOLD,
        severity="minor",
        field="cpu",
        op=">=",
        threshold=90,
        measurement="device_metrics",
    )
    e = RuleEngine([r])
    assert e.observe([pt(1, cpu=95)], 1, DEVICES) == []  # telemetry, not metrics
    assert e.observe([pt(2, cpu="high", measurement="device_metrics")], 2, DEVICES) == []
    assert actions(e.observe([pt(3, cpu=95, measurement="device_metrics")], 3, DEVICES)) == [OPEN]


def test_rate_of_change_abs_and_signed_and_quiet_resolve() -> None:
    r = Rule(
        id=3,
        name="jump",
        kind=RuleKind.RATE,
        severity="warning",
        field="pressure",
        op=">",
        threshold=5,
        clear_after_s=30,
    )
    e = RuleEngine([r])
    assert run(e, 0, pressure=100) == []
    assert run(e, 10, pressure=120) == []  # 2/s
    out = run(e, 12, pressure=100)  # -10/s, abs 10
    assert actions(out) == [OPEN] and out[0].value == pytest.approx(-10)
    assert actions(run(e, 13, pressure=80)) == [UPDATE]
    assert run(e, 20, pressure=80) == []
    assert e.tick(40, DEVICES) == []  # last breach at 13 (arrival), quiet 27 s
    res = e.tick(43, DEVICES)
    assert actions(res) == [RESOLVE]

    signed = RuleEngine(
        [
            Rule(
                id=4,
                name="rise",
                kind=RuleKind.RATE,
                severity="info",
                field="pressure",
                op=">",
                threshold=5,
                absolute=False,
            )
        ]
    )
    run(signed, 0, pressure=100)
    assert run(signed, 1, pressure=80) == []  # falling fast is not rising
    assert actions(run(signed, 2, pressure=90)) == [OPEN]


def test_nodata_on_tick_and_resolve_when_data_returns() -> None:
    r = Rule(id=5, name="silent", kind=RuleKind.NODATA, severity="critical", hold_s=300)
    devices = {**DEVICES, "d3": Info("d3", "pump", "lyon", status="provisioned")}
    e = RuleEngine([r], started=0)
    run(e, 100, "d1", temperature=20)
    assert e.tick(299, devices) == []
    out = e.tick(300, devices)  # d2 is active and never seen: counted from start-up
    assert [(t.action, t.device_id) for t in out] == [(OPEN, "d2")]
    out = e.tick(400, devices)
    assert [(t.action, t.device_id) for t in out] == [(OPEN, "d1")]
    assert "no data for 300s" in out[0].message
    assert e.tick(500, devices) == []  # one alert per pair, no repeats
    e.announced([StatusChange("d3", True, 500)])  # seen once via status: watched now
    res = run(e, 510, "d1", temperature=20)
    assert [(t.action, t.device_id) for t in res] == [(RESOLVE, "d1")]
    assert [t.device_id for t in e.tick(805, devices)] == ["d3"]


def test_event_level_at_or_above() -> None:
    r = Rule(id=6, name="errors", kind=RuleKind.EVENT, severity="major", level="error", clear_after_s=60)
    e = RuleEngine([r])
    warn = pt(1, measurement="event_logs", tags={"level": "warning"}, code="W1", message="meh")
    assert e.observe([warn], 1, DEVICES) == []
    err = pt(2, measurement="event_logs", tags={"level": "error"}, code="E42", message="boom")
    out = e.observe([err], 2, DEVICES)
    assert actions(out) == [OPEN] and "E42 boom" in out[0].message
    crit = pt(3, measurement="event_logs", tags={"level": "critical"}, code="E1", message="x")
    assert actions(e.observe([crit], 3, DEVICES)) == [UPDATE]
    assert e.tick(62, DEVICES) == []
    assert actions(e.tick(63, DEVICES)) == [RESOLVE]


@pytest.mark.parametrize(
    ("scope", "value", "hits"),
    [
        ("all", None, {"d1", "d2", "x9"}),
        ("device", "d2", {"d2"}),
        ("type", "thermo", {"d1"}),
        ("site", "lyon", {"d2", "x9"}),
    ],
)
def test_scopes(scope: str, value: str | None, hits: set[str]) -> None:
    r = Rule(
        id=7,
        name="s",
        kind=RuleKind.THRESHOLD,
        severity="info",
        field="level",
        op=">",
        threshold=0,
        scope=scope,
        scope_value=value,
    )
    e = RuleEngine([r])
    # x9 is not in the registry: its point tags stand in
    points = [pt(1, "d1", level=1), pt(1, "d2", level=1), pt(1, "x9", tags={"site": "lyon"}, level=1)]
    assert {t.device_id for t in e.observe(points, 1, DEVICES)} == hits


def test_restore_and_sync_open() -> None:
    e = RuleEngine([HOT])
    e.restore(1, "d1", 90, 0)
    e.restore(99, "d1", 90, 0)  # unknown rule: ignored
    assert e.firing() == {(1, "d1")}
    assert actions(run(e, 10, temperature=91)) == [UPDATE]
    e.sync_open(set())  # resolved by a person
    assert run(e, 20, temperature=91) == []
    e.set_rules([])
    assert e.firing() == set()


def test_validation_messages() -> None:
    with pytest.raises(RuleError, match="needs --field"):
        validate(Rule(id=0, name="x", kind=RuleKind.THRESHOLD, severity="major", op=">", threshold=1))
    with pytest.raises(RuleError, match="unknown severity"):
        validate(Rule(id=0, name="x", kind=RuleKind.NODATA, severity="huge", hold_s=5))
    with pytest.raises(RuleError, match="needs --scope-value"):
        validate(Rule(id=0, name="x", kind=RuleKind.NODATA, severity="info", hold_s=5, scope="site"))
    with pytest.raises(RuleError, match="needs --for"):
        validate(Rule(id=0, name="x", kind=RuleKind.NODATA, severity="info"))
    with pytest.raises(RuleError, match="unknown measurement"):
        validate(
            Rule(
                id=0,
                name="x",
                kind=RuleKind.THRESHOLD,
                severity="info",
                field="t",
                op=">",
                threshold=1,
                measurement="readings",
            )
        )
    with pytest.raises(RuleError, match="takes no --field"):
        validate(Rule(id=0, name="x", kind=RuleKind.EVENT, severity="info", field="t"))
    assert validate(HOT) is HOT


def test_every_kind_has_one_spec_and_every_spec_describes_its_rules() -> None:
    assert set(SPECS) == set(RuleKind) and all(kind is spec.kind for kind, spec in SPECS.items())
    examples = {
        RuleKind.THRESHOLD: HOT,
        RuleKind.RATE: Rule(id=2, name="r", kind=RuleKind.RATE, severity="info", field="p", op=">", threshold=5),
        RuleKind.NODATA: Rule(id=3, name="n", kind=RuleKind.NODATA, severity="info", hold_s=300),
        RuleKind.EVENT: Rule(id=4, name="e", kind=RuleKind.EVENT, severity="info", level="error"),
    }
    assert {k: describe(validate(r)) for k, r in examples.items()} == {
        RuleKind.THRESHOLD: "temperature > 80 for 60s",
        RuleKind.RATE: "|dp/dt| > 5/s",
        RuleKind.NODATA: "no data for 300s",
        RuleKind.EVENT: "event level >= error",
    }
