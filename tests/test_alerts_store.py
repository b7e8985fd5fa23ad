"""Alerts in a real registry database (SQLite and a throwaway PostgreSQL): transitions,
the human lifecycle, site limits, queries, statistics, rules and the stream observer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from core.directory import DeviceDirectory
from core.model import Point
from core.timefmt import utc
from ingest.metrics import Metrics
from registry.alerts import store
from registry.alerts.engine import Transition
from registry.alerts.observer import AlertObserver
from registry.alerts.rules import OPEN, RESOLVE, UPDATE, Rule, RuleError, RuleKind
from registry.auth import BOOTSTRAP_ACTOR, Actor, PermissionDenied
from registry.db import make_engine
from registry.directory import DeviceInfo
from registry.models import Alert, AuditEntry
from tests.keyed_cli import migrated_registry_url

ADMIN = BOOTSTRAP_ACTOR
OPERATOR = Actor("olga", "operator", None)
VIEWER = Actor("vic", "viewer", None)
PARIS_OP = Actor("paula", "operator", ("paris",))
T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
DIRECTORY = {
    "d1": DeviceInfo("d1", "thermo", "paris", "active"),
    "d2": DeviceInfo("d2", "pump", "lyon", "active"),
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(migrated_registry_url(request, tmp_path))
    yield engine
    engine.dispose()


def add(engine: Engine, rule: Rule) -> int:
    with Session(engine) as s, s.begin():
        return store.add_rule(s, ADMIN, rule).id


def apply(engine: Engine, *ts: Transition) -> None:
    with Session(engine) as s, s.begin():
        store.apply_transitions(s, ts)


def alerts(engine: Engine) -> list[Alert]:
    with Session(engine) as s:
        rows = list(s.scalars(select(Alert).order_by(Alert.id)))
        for r in rows:
            _ = r.events
        return rows


def hot(hold: float = 0, hyst: float = 0, **kw: Any) -> Rule:
    return Rule(
        id=0,
        name=str(kw.pop("name", "hot")),
        kind=RuleKind.THRESHOLD,
        severity="major",
        field="temperature",
        op=">",
        threshold=80,
        hold_s=hold,
        hysteresis=hyst,
        **kw,
    )


def test_transitions_one_alert_per_pair_counted_not_flooded(db: Engine) -> None:
    rid = add(db, hot())
    apply(
        db,
        Transition(OPEN, rid, "d1", T0, 85, "hot: t > 80", "major", "paris"),
        *(Transition(UPDATE, rid, "d1", T0 + i, 85 + i) for i in range(1, 4)),
    )
    apply(db, Transition(OPEN, rid, "d1", T0 + 5, 99, "again", "major", "paris"))
    [a] = alerts(db)
    assert (a.status, a.count, a.last_value, a.site, a.severity) == ("open", 5, 99, "paris", "major")
    assert utc(a.last_seen_at) == datetime.fromtimestamp(T0 + 5, UTC)
    assert [e.action for e in a.events] == ["opened"]  # repeats are counted, not logged
    apply(
        db,
        Transition(RESOLVE, rid, "d1", T0 + 9, 70, "back to normal"),
        Transition(OPEN, rid, "d1", T0 + 20, 90, "hot again", "major", "paris"),
    )
    first, second = alerts(db)
    assert (first.status, first.resolved_by) == ("resolved", "system")
    assert [e.action for e in first.events] == ["opened", "auto_resolved"]
    assert (second.status, second.count, second.opened_at is not None) == ("open", 1, True)
    apply(db, Transition(UPDATE, rid, "d2", T0, 1), Transition(RESOLVE, rid, "d2", T0))
    apply(db, Transition(OPEN, 9999, "d1", T0, 1, "rule gone", "info"))
    assert len(alerts(db)) == 2  # nothing open for d2; unknown rule dropped


def test_human_lifecycle_history_and_audit(db: Engine) -> None:
    rid = add(db, hot())
    apply(db, Transition(OPEN, rid, "d1", T0, 85, "hot", "major", "paris"))
    [a] = alerts(db)
    with Session(db) as s, s.begin():
        store.acknowledge(s, OPERATOR, a.id, "looking")
    with Session(db) as s, s.begin(), pytest.raises(store.InvalidTransition, match="acknowledged"):
        store.acknowledge(s, OPERATOR, a.id)
    apply(db, Transition(UPDATE, rid, "d1", T0 + 1, 90))  # still counted while acknowledged
    with Session(db) as s, s.begin():
        store.resolve(s, OPERATOR, a.id, "fan replaced")
    with Session(db) as s, s.begin(), pytest.raises(store.InvalidTransition, match=r"already resolved \(by olga at"):
        store.resolve(s, OPERATOR, a.id)
    with Session(db) as s, pytest.raises(store.AlertNotFound, match="no alert 12345"):
        store.acknowledge(s, OPERATOR, 12345)
    with Session(db) as s:
        shown = store.show_alert(s, VIEWER, a.id)
        audit = [
            (e.actor, e.action, e.target)
            for e in s.scalars(select(AuditEntry).where(AuditEntry.action.like("alert.%")).order_by(AuditEntry.id))
        ]
    assert shown.count == 2 and shown.rule == "hot"
    assert [(e.action, e.actor, e.note) for e in shown.timeline] == [
        ("opened", "system", "hot"),
        ("acknowledged", "olga", "looking"),
        ("resolved", "olga", "fan replaced"),
    ]
    assert audit == [("olga", "alert.ack", f"alert:{a.id}"), ("olga", "alert.resolve", f"alert:{a.id}")]


def test_roles_and_site_limits(db: Engine) -> None:
    rid = add(db, hot())
    apply(
        db,
        Transition(OPEN, rid, "d1", T0, 85, "p", "major", "paris"),
        Transition(OPEN, rid, "d2", T0, 85, "l", "major", "lyon"),
    )
    paris_id, lyon_id = (a.id for a in alerts(db))
    with Session(db) as s, pytest.raises(PermissionDenied, match="viewer may not acknowledge"):
        store.acknowledge(s, VIEWER, paris_id)
    with Session(db) as s, pytest.raises(PermissionDenied, match="operator may not manage"):
        store.add_rule(s, OPERATOR, hot(name="other"))
    with Session(db) as s:
        assert [a.site for a in store.list_alerts(s, PARIS_OP)] == ["paris"]
        assert store.stats(s, PARIS_OP).total == 1
        with pytest.raises(store.AlertNotFound):
            store.show_alert(s, PARIS_OP, lyon_id)
        with pytest.raises(store.AlertNotFound):
            store.resolve(s, PARIS_OP, lyon_id)
    with Session(db) as s, s.begin():
        assert store.acknowledge(s, PARIS_OP, paris_id).status == "acknowledged"


def test_list_filters_newest_first(db: Engine) -> None:
    r1, r2 = add(db, hot()), add(db, hot(name="cold"))
    now = datetime.now(UTC).timestamp()
    spec = [  # rule, device, site, severity, hours ago
        (r1, "d1", "paris", "major", 1),
        (r1, "d2", "lyon", "major", 2),
        (r2, "d1", "paris", "critical", 3),
        (r2, "d3", None, "info", 30),
        (r2, "d2", "lyon", "critical", 50),
    ]
    for rid, dev, site, sev, ago in spec:
        apply(db, Transition(OPEN, rid, dev, now - ago * 3600, 1.0, "m", sev, site))
    ids = {(rid, dev): a.id for a in alerts(db) for rid, dev in [(a.rule_id, a.device_id)]}
    with Session(db) as s, s.begin():
        store.resolve(s, ADMIN, ids[(r1, "d2")])
        store.acknowledge(s, ADMIN, ids[(r2, "d1")])

    def devices(**f: object) -> list[tuple[str, str]]:
        with Session(db) as s:
            return [(a.device_id, a.rule) for a in store.list_alerts(s, VIEWER, **f)]  # type: ignore[arg-type]

    assert devices() == [("d1", "hot"), ("d2", "hot"), ("d1", "cold"), ("d3", "cold"), ("d2", "cold")]
    assert devices(status="open") == [("d1", "hot"), ("d3", "cold"), ("d2", "cold")]
    assert devices(status="resolved") == [("d2", "hot")]
    assert devices(severity="critical") == [("d1", "cold"), ("d2", "cold")]
    assert devices(status="open", severity="critical") == [("d2", "cold")]
    assert devices(device="d2") == [("d2", "hot"), ("d2", "cold")]
    assert devices(site="lyon", since=datetime.now(UTC) - timedelta(hours=24)) == [("d2", "hot")]
    assert devices(since=datetime.now(UTC) - timedelta(hours=40)) == devices()[:4]
    assert devices(limit=2) == devices()[:2]
    with Session(db) as s, pytest.raises(ValueError, match="unknown status"):
        store.list_alerts(s, VIEWER, status="closed")


def test_stats_counts_and_mean_times(db: Engine) -> None:
    r1, r2 = add(db, hot()), add(db, hot(name="cold"))
    base = datetime.now(UTC) - timedelta(hours=5)
    t = base.timestamp()
    apply(
        db,
        Transition(OPEN, r1, "d1", t, 1, "a", "major", "paris"),
        Transition(OPEN, r1, "d2", t, 1, "b", "critical", "lyon"),
        Transition(OPEN, r2, "d1", t, 1, "c", "major", "paris"),
        Transition(OPEN, r2, "old", t - 10 * 86400, 1, "d", "info", None),
    )
    a, b, c, _old = alerts(db)
    with Session(db) as s, s.begin():
        store.acknowledge(s, ADMIN, a.id, now=base + timedelta(seconds=60))
        store.acknowledge(s, ADMIN, b.id, now=base + timedelta(seconds=180))
        store.resolve(s, ADMIN, a.id, now=base + timedelta(seconds=600))
        store.resolve(s, ADMIN, c.id, now=base + timedelta(seconds=1200))
    with Session(db) as s:
        st = store.stats(s, VIEWER, since=datetime.now(UTC) - timedelta(days=7))
        everything = store.stats(s, VIEWER)
    assert st.total == 3 and everything.total == 4
    assert st.by_status == {"acknowledged": 1, "resolved": 2}
    assert st.by_severity == {"major": 2, "critical": 1}
    assert st.by_rule == {"hot": 2, "cold": 1}
    assert st.by_device == {"d1": 2, "d2": 1}
    assert st.mean_time_to_ack_s == pytest.approx(120, abs=0.01)
    assert st.mean_time_to_resolve_s == pytest.approx(900, abs=0.01)
    assert everything.by_device["old"] == 1


def test_rules_disable_remove_purge(db: Engine) -> None:
    rid = add(db, hot())
    with Session(db) as s, pytest.raises(RuleError, match="already exists"):
        store.add_rule(s, ADMIN, hot())
    apply(db, Transition(OPEN, rid, "d1", T0, 85, "hot", "major", "paris"))
    with Session(db) as s, s.begin():
        store.set_rule_enabled(s, ADMIN, "hot", False)
        assert store.load_rules(s) == []
    [a] = alerts(db)
    assert (a.status, a.events[-1].note) == ("resolved", "rule disabled")
    with Session(db) as s, s.begin(), pytest.raises(store.InvalidTransition, match="--purge"):
        store.remove_rule(s, ADMIN, "hot")
    with Session(db) as s, s.begin():
        assert store.remove_rule(s, ADMIN, str(rid), purge=True) == 1
    with Session(db) as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 0
        with pytest.raises(store.AlertNotFound):
            store.remove_rule(s, ADMIN, "hot")


def pt(t: float, dev: str = "d1", **fields: float) -> Point:
    return Point("sensor_readings", dev, dict(fields), int(t * 1e9))


def test_observer_end_to_end_restart_and_manual_resolve(db: Engine) -> None:
    add(db, hot(hold=10, hyst=2))
    obs = AlertObserver(db, DeviceDirectory.of(DIRECTORY), clock=lambda: T0)
    obs.load()
    obs.observe([pt(T0, temperature=90)], T0)
    obs.observe([pt(T0 + 10, temperature=91)], T0 + 10)
    obs.observe([pt(T0 + 11, temperature=92)], T0 + 11)
    obs.close()
    [a] = alerts(db)
    assert (a.status, a.count, a.last_value) == ("open", 2, 92)

    metrics = Metrics()
    restarted = AlertObserver(db, DeviceDirectory.of(DIRECTORY), clock=lambda: T0 + 100, counts=metrics)
    restarted.load()
    restarted.observe([pt(T0 + 101, temperature=95)], T0 + 101)  # same alert, no new hold
    [a] = alerts(db)
    assert (a.count, a.last_value) == (3, 95)
    restarted.observe([pt(T0 + 102, temperature=79)], T0 + 102)  # inside the hysteresis band
    assert alerts(db)[0].status == "open"
    restarted.observe([pt(T0 + 103, temperature=77)], T0 + 103)
    [a] = alerts(db)
    assert (a.status, [e.action for e in a.events]) == ("resolved", ["opened", "auto_resolved"])

    restarted.observe([pt(T0 + 200, temperature=90), pt(T0 + 210, temperature=90)], T0 + 210)
    second = alerts(db)[1]
    with Session(db) as s, s.begin():
        store.resolve(s, OPERATOR, second.id, "handled")
    restarted.tick(T0 + 230)  # reload: the engine forgets the alert a person resolved
    restarted.observe([pt(T0 + 231, temperature=90)], T0 + 231)
    assert len(alerts(db)) == 2 and alerts(db)[1].count == 1  # hold starts over
    restarted.observe([pt(T0 + 241, temperature=90)], T0 + 241)
    assert [a.status for a in alerts(db)] == ["resolved", "resolved", "open"]
    # counted as written: the first resolved by the engine, the second and third opened (the second
    # resolved by a person, not counted as the engine's)
    assert metrics.value("iot_alerts_opened_total") == 2 and metrics.value("iot_alerts_resolved_total") == 1


def test_observer_picks_up_new_rules_on_tick_and_nodata(db: Engine) -> None:
    obs = AlertObserver(db, DeviceDirectory.of(DIRECTORY), clock=lambda: T0, reload_interval=10)
    obs.load()
    obs.observe([pt(T0, "d1", temperature=20)], T0)
    add(
        db,
        Rule(
            id=0, name="silent", kind=RuleKind.NODATA, severity="critical", hold_s=60, scope="site", scope_value="paris"
        ),
    )
    obs.tick(T0 + 5)
    assert alerts(db) == []  # not reloaded yet
    obs.tick(T0 + 61)
    [a] = alerts(db)
    assert (a.device_id, a.severity, a.site, a.status) == ("d1", "critical", "paris", "open")
    obs.observe([pt(T0 + 70, "d1", temperature=20)], T0 + 70)
    assert alerts(db)[0].status == "resolved"


def test_observer_keeps_transitions_while_database_fails(db: Engine) -> None:
    add(db, hot())
    obs = AlertObserver(db, DeviceDirectory.of(DIRECTORY), clock=lambda: T0)
    obs.load()
    with db.begin() as conn:  # take the table away: every write fails
        conn.exec_driver_sql("ALTER TABLE alerts RENAME TO alerts_away")
    obs.observe([pt(T0, temperature=90)], T0)
    obs.observe([pt(T0 + 1, temperature=91)], T0 + 1)
    assert len(obs._pending) == 2
    with db.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE alerts_away RENAME TO alerts")
    obs.tick(T0 + 2)
    assert obs._pending == []
    [a] = alerts(db)
    assert (a.status, a.count, a.last_value) == ("open", 2, 91)
