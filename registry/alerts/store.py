"""Alerts in the registry database: applying engine transitions, the human lifecycle
(acknowledge, resolve), queries for the CLI and rule management."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, select
from sqlalchemy.orm import Session

from core.timefmt import from_epoch as _dt
from core.timefmt import iso, utc
from registry.alerts.engine import Transition
from registry.alerts.kinds import describe, validate
from registry.alerts.queries import LIST_COLUMNS as LIST_COLUMNS
from registry.alerts.queries import AlertSummary as AlertSummary
from registry.alerts.queries import list_alerts as list_alerts
from registry.alerts.queries import list_query as list_query
from registry.alerts.queries import list_rules as list_rules
from registry.alerts.queries import rule_from_row as rule_from_row
from registry.alerts.queries import rule_names, summary_fields, visible
from registry.alerts.rules import LEVELS, OPEN, RESOLVE, UPDATE, AlertStatus, Rule, RuleError, RuleKind
from registry.alerts.rules import InvalidTransition as InvalidTransition
from registry.auth import Actor, PermissionDenied, record_audit, require, require_site
from registry.models import Alert, AlertEvent, AlertRule, Device
from registry.notify import outbox

SYSTEM = "system"


class AlertNotFound(LookupError):
    """No such alert or rule (or not visible to the actor)."""


# -- the daemon side -----------------------------------------------------------------------


def load_rules(session: Session) -> list[Rule]:
    """The enabled rules, as the engine evaluates them."""
    rows = session.scalars(select(AlertRule).where(AlertRule.enabled.is_(True)))
    return [rule_from_row(r) for r in rows]


@dataclass(frozen=True, slots=True)
class OpenAlert:
    rule_id: int
    device_id: str
    last_value: float | None
    last_seen: float


def load_open(session: Session) -> list[OpenAlert]:
    """Every alert not yet resolved, for restoring the engine's firing states."""
    rows = session.execute(
        select(Alert.rule_id, Alert.device_id, Alert.last_value, Alert.last_seen_at).where(
            Alert.status != AlertStatus.RESOLVED
        )
    )
    return [OpenAlert(r, d, v, (utc(s) or datetime.now(UTC)).timestamp()) for r, d, v, s in rows]


def _open_rows(session: Session, keys: set[tuple[int, str]]) -> dict[tuple[int, str], Alert]:
    """The open alerts of these (rule, device) pairs, locked, in a few queries."""
    out: dict[tuple[int, str], Alert] = {}
    devices = sorted({d for _, d in keys})
    for i in range(0, len(devices), 500):
        q = (
            select(Alert)
            .where(Alert.status != AlertStatus.RESOLVED, Alert.device_id.in_(devices[i : i + 500]))
            .with_for_update()
        )
        for row in session.scalars(q):
            if (row.rule_id, row.device_id) in keys:
                out[(row.rule_id, row.device_id)] = row
    return out


def apply_transitions(session: Session, transitions: Sequence[Transition]) -> None:
    """Write a batch of engine transitions; the caller commits once for the batch.

    open: a new alert + an ``opened`` event (an alert already open for the pair is updated
    instead). update: count, last value and last seen, no event row. resolve: ``auto_resolved``.
    Transitions whose alert is gone (resolved by a person, rule removed or disabled) are dropped.
    """
    if not transitions:
        return
    rule_ids = {t.rule_id for t in transitions if t.action == OPEN}
    live = (
        set(session.scalars(select(AlertRule.id).where(AlertRule.id.in_(rule_ids), AlertRule.enabled.is_(True))))
        if rule_ids
        else set()
    )
    rows: dict[tuple[int, str], Alert | None] = dict(
        _open_rows(session, {(t.rule_id, t.device_id) for t in transitions})
    )
    notify: list[tuple[Alert, str, str | None]] = []
    for t in transitions:
        key = (t.rule_id, t.device_id)
        row = rows.get(key)
        at = _dt(t.at)
        if t.action == OPEN and row is None:
            if t.rule_id not in live:
                continue
            row = Alert(
                rule_id=t.rule_id,
                device_id=t.device_id,
                site=t.site,
                severity=t.severity,
                status=AlertStatus.OPEN,
                message=t.message,
                count=1,
                last_value=t.value,
                opened_at=at,
                last_seen_at=at,
            )
            row.events.append(AlertEvent(at=at, action="opened", actor=SYSTEM, value=t.value, note=t.message))
            session.add(row)
            rows[key] = row
            notify.append((row, "opened", None))
        elif row is None:
            continue
        elif t.action in (OPEN, UPDATE):
            row.count = (row.count or 0) + 1
            row.last_value = t.value if t.value is not None else row.last_value
            if at > (utc(row.last_seen_at) or at):
                row.last_seen_at = at
        elif t.action == RESOLVE:
            row.status = AlertStatus.RESOLVED
            row.resolved_at = at
            row.resolved_by = SYSTEM
            row.events.append(
                AlertEvent(at=at, action="auto_resolved", actor=SYSTEM, value=t.value, note=t.message or None)
            )
            session.flush()  # the resolved row leaves the one-open-per-pair index first
            rows[key] = None
            notify.append((row, "resolved", None))
    outbox.enqueue(session, notify)  # same transaction: a notification exists iff its transition does


# -- the human lifecycle -------------------------------------------------------------------


def _get(session: Session, actor: Actor, alert_id: int, lock: bool = False) -> Alert:
    q = select(Alert).where(Alert.id == alert_id)
    row = session.scalar(q.with_for_update() if lock else q)
    if row is None or not actor.can_see_site(row.site):
        raise AlertNotFound(f"no alert {alert_id}")
    return row


def acknowledge(
    session: Session, actor: Actor, alert_id: int, note: str | None = None, now: datetime | None = None
) -> Alert:
    """open → acknowledged, by an operator; kept in the timeline and the audit trail."""
    require(actor, "operator", "acknowledge alerts")
    row = _get(session, actor, alert_id, lock=True)
    require(actor, "operator", "acknowledge alerts", site=row.site)
    if row.status != AlertStatus.OPEN:
        raise InvalidTransition(f"alert {alert_id} is {row.status}: only open alerts can be acknowledged")
    at = now or datetime.now(UTC)
    row.status, row.acknowledged_at, row.acknowledged_by = AlertStatus.ACKNOWLEDGED, at, actor.name
    row.events.append(AlertEvent(at=at, action="acknowledged", actor=actor.name, note=note))
    record_audit(session, actor, "alert.ack", f"alert:{alert_id}", note=note)
    outbox.enqueue(session, [(row, "acknowledged", actor.name)])
    return row


def resolve(
    session: Session, actor: Actor, alert_id: int, note: str | None = None, now: datetime | None = None
) -> Alert:
    """open or acknowledged → resolved, by an operator."""
    require(actor, "operator", "resolve alerts")
    row = _get(session, actor, alert_id, lock=True)
    require(actor, "operator", "resolve alerts", site=row.site)
    if row.status == AlertStatus.RESOLVED:
        raise InvalidTransition(
            f"alert {alert_id} is already resolved (by {row.resolved_by} at {_iso(row.resolved_at)})"
        )
    at = now or datetime.now(UTC)
    row.status, row.resolved_at, row.resolved_by = AlertStatus.RESOLVED, at, actor.name
    row.events.append(AlertEvent(at=at, action="resolved", actor=actor.name, note=note))
    record_audit(session, actor, "alert.resolve", f"alert:{alert_id}", note=note)
    outbox.enqueue(session, [(row, "resolved", actor.name)])
    return row


def _iso(dt: datetime | None) -> str:
    return iso(dt) if dt is not None else "?"


# -- queries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime | None
    action: str
    actor: str
    note: str | None
    value: float | None


@dataclass(frozen=True)
class AlertDetail(AlertSummary):
    """One alert with its timeline (oldest first) and its notifications, for `alerts show`."""

    timeline: list[TimelineEntry]
    notifications: list[outbox.NotificationRecord]


@dataclass(frozen=True)
class AlertStats:
    since: datetime | None
    total: int
    by_status: dict[str, int]
    by_severity: dict[str, int]
    by_rule: dict[str, int]
    by_device: dict[str, int]
    mean_time_to_ack_s: float | None
    mean_time_to_resolve_s: float | None


def show_alert(session: Session, actor: Actor, alert_id: int) -> AlertDetail:
    """One alert with its rule and timeline (every transition, oldest first)."""
    require(actor, "viewer", "show alerts")
    row = _get(session, actor, alert_id)
    names = rule_names(session, [row.rule_id])
    timeline = [TimelineEntry(utc(e.at), e.action, e.actor, e.note, e.value) for e in row.events]
    return AlertDetail(
        **summary_fields(row, names), timeline=timeline, notifications=outbox.attempts_for(session, alert_id)
    )


def _seconds(session: Session, end: Any, start: Any) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return func.extract("epoch", end - start)


def stats(session: Session, actor: Actor, since: datetime | None = None, top: int = 20) -> AlertStats:
    """Counts by status, severity, rule and device (top ``top``), and the mean seconds from
    opening to acknowledgement and to resolution, over alerts opened since ``since``."""
    require(actor, "viewer", "see alert statistics")

    def scoped(q: Select[Any]) -> Select[Any]:
        q = visible(q, actor)
        return q if since is None else q.where(Alert.opened_at >= since)

    def counts(col: Any, limit: int | None = None) -> list[tuple[Any, int]]:
        n = func.count().label("n")
        q = scoped(select(col, n)).group_by(col).order_by(n.desc(), col)
        return [(k, int(v)) for k, v in session.execute(q.limit(limit))]

    total = session.scalar(scoped(select(func.count()).select_from(Alert))) or 0
    by_rule = counts(Alert.rule_id, top)
    names = rule_names(session, (r for r, _ in by_rule))
    mtta = session.scalar(
        scoped(select(func.avg(_seconds(session, Alert.acknowledged_at, Alert.opened_at)))).where(
            Alert.acknowledged_at.is_not(None)
        )
    )
    mttr = session.scalar(
        scoped(select(func.avg(_seconds(session, Alert.resolved_at, Alert.opened_at)))).where(
            Alert.resolved_at.is_not(None)
        )
    )
    return AlertStats(
        since=since,
        total=int(total),
        by_status=dict(counts(Alert.status)),
        by_severity=dict(counts(Alert.severity)),
        by_rule={names.get(r, str(r)): n for r, n in by_rule},
        by_device=dict(counts(Alert.device_id, top)),
        mean_time_to_ack_s=None if mtta is None else float(mtta),
        mean_time_to_resolve_s=None if mttr is None else float(mttr),
    )


# -- rules ---------------------------------------------------------------------------------


def _rule(session: Session, ref: str) -> AlertRule:
    q = select(AlertRule).where(AlertRule.name == ref)
    row = session.scalar(q)
    if row is None and ref.isdigit():
        row = session.get(AlertRule, int(ref))
    if row is None:
        raise AlertNotFound(f"no alert rule {ref!r}")
    return row


def _require_rule_scope(
    session: Session, actor: Actor, scope: str, scope_value: str | None, rule_id: int | None = None
) -> None:
    """Admins manage rules; a site-limited admin only rules that reach nothing beyond its sites:
    scope ``site`` of one of them, or ``device`` of a device there, and (for an existing rule) no
    alert of the rule at another site."""
    action = "manage alert rules"
    require(actor, "admin", action)
    if actor.sites is None:
        return
    if scope == "site":
        require_site(actor, "admin", action, scope_value)
    elif scope == "device":
        device = session.get(Device, scope_value) if scope_value else None
        require_site(actor, "admin", f"{action} for device {scope_value}", device.site if device else None)
    else:
        raise PermissionDenied(
            f"key {actor.name!r} is limited to sites {', '.join(actor.sites)}: "
            f"may not {action} scoped to {scope} (it reaches every site)"
        )
    if rule_id is not None:
        sites = session.scalars(select(Alert.site).where(Alert.rule_id == rule_id).distinct())
        for site in sites:
            require_site(actor, "admin", f"{action} with alerts", site)


def add_rule(session: Session, actor: Actor, rule: Rule) -> AlertRule:
    """Store a validated rule (admins only); the daemon picks it up on its next reload."""
    require(actor, "admin", "manage alert rules")
    validate(rule)
    _require_rule_scope(session, actor, rule.scope, rule.scope_value)
    if session.scalar(select(AlertRule.id).where(AlertRule.name == rule.name)) is not None:
        raise RuleError(f"an alert rule named {rule.name!r} already exists")
    values = {f.name: getattr(rule, f.name) for f in fields(Rule) if f.name != "id"}
    if rule.kind is RuleKind.EVENT:
        values["level"] = rule.level or "error"
        assert values["level"] in LEVELS
    row = AlertRule(**values, enabled=True, created_at=datetime.now(UTC))
    session.add(row)
    session.flush()
    record_audit(
        session,
        actor,
        "alert_rule.add",
        f"alert_rule:{rule.name}",
        kind=rule.kind,
        definition=describe(rule_from_row(row)),
        severity=rule.severity,
        scope=rule.scope,
        scope_value=rule.scope_value,
    )
    return row


def _resolve_open_of(session: Session, actor: Actor, rule: AlertRule, note: str) -> int:
    rows = list(session.scalars(select(Alert).where(Alert.rule_id == rule.id, Alert.status != AlertStatus.RESOLVED)))
    at = datetime.now(UTC)
    for row in rows:
        row.status, row.resolved_at, row.resolved_by = AlertStatus.RESOLVED, at, actor.name
        row.events.append(AlertEvent(at=at, action="resolved", actor=actor.name, note=note))
    outbox.enqueue(session, [(row, "resolved", actor.name) for row in rows])
    return len(rows)


def set_rule_enabled(session: Session, actor: Actor, ref: str, enabled: bool) -> AlertRule:
    """Enable or disable a rule; disabling resolves its open alerts."""
    require(actor, "admin", "manage alert rules")
    row = _rule(session, ref)
    _require_rule_scope(session, actor, row.scope, row.scope_value, row.id)
    resolved = 0
    if not enabled:
        resolved = _resolve_open_of(session, actor, row, "rule disabled")
    row.enabled = enabled
    record_audit(
        session,
        actor,
        "alert_rule.enable" if enabled else "alert_rule.disable",
        f"alert_rule:{row.name}",
        resolved_alerts=resolved,
    )
    return row


def remove_rule(session: Session, actor: Actor, ref: str, purge: bool = False) -> int:
    """Delete a rule. A rule with alert history is kept unless ``purge`` (which deletes that
    history too); returns how many alerts were deleted."""
    require(actor, "admin", "manage alert rules")
    row = _rule(session, ref)
    _require_rule_scope(session, actor, row.scope, row.scope_value, row.id)
    n = session.scalar(select(func.count()).select_from(Alert).where(Alert.rule_id == row.id))
    if n and not purge:
        raise InvalidTransition(
            f"alert rule {row.name!r} has {n} alert(s) in its history: disable it instead, "
            "or pass --purge to delete the rule and its alerts"
        )
    session.execute(delete(AlertEvent).where(AlertEvent.alert_id.in_(select(Alert.id).where(Alert.rule_id == row.id))))
    session.execute(delete(Alert).where(Alert.rule_id == row.id))
    record_audit(session, actor, "alert_rule.remove", f"alert_rule:{row.name}", deleted_alerts=int(n or 0))
    session.delete(row)
    return int(n or 0)
