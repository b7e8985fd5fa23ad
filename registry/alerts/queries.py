"""What ``iot alerts list`` and ``iot alerts rules list`` read, through SQLAlchemy Core alone (no
ORM): each function takes a ``Connection`` or an ORM ``Session`` (both execute Core statements).
The ORM side of alerts (transitions, acknowledgement, rule changes) is :mod:`registry.alerts.store`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select

from core.timefmt import utc
from registry.alerts.rules import STATUSES, Rule, RuleKind
from registry.auth import Actor, require
from registry.tables import alert_rules, alerts

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

LIST_COLUMNS = (
    "id",
    "status",
    "severity",
    "device_id",
    "site",
    "rule",
    "count",
    "last_value",
    "opened_at",
    "last_seen_at",
    "message",
)


@dataclass(frozen=True)
class AlertSummary:
    """One alert as `alerts list` shows it (times aware UTC)."""

    id: int
    status: str
    severity: str
    device_id: str
    site: str | None
    rule_id: int
    rule: str  # the rule's name (its id when the rule is gone)
    count: int
    last_value: float | None
    message: str | None
    opened_at: datetime | None
    last_seen_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None


def rule_from_row(row: Any) -> Rule:
    """The rule an ``alert_rules`` row (ORM object or Core row) holds, as the engine evaluates it."""
    return Rule(
        id=row.id,
        name=row.name,
        kind=RuleKind(row.kind),
        severity=row.severity,
        scope=row.scope,
        scope_value=row.scope_value,
        measurement=row.measurement,
        field=row.field,
        op=row.op,
        threshold=row.threshold,
        hold_s=row.hold_s or 0.0,
        hysteresis=row.hysteresis or 0.0,
        clear_after_s=row.clear_after_s or 0.0,
        level=row.level,
        absolute=True if row.absolute is None else row.absolute,
    )


def visible(q: Select[Any], actor: Actor) -> Select[Any]:
    return q if actor.sites is None else q.where(alerts.c.site.in_(actor.sites))


def rule_names(db: Connection | Session, ids: Iterable[int]) -> dict[int, str]:
    wanted = set(ids)
    if not wanted:
        return {}
    q = select(alert_rules.c.id, alert_rules.c.name).where(alert_rules.c.id.in_(wanted))
    return {i: n for i, n in db.execute(q)}


def summary_fields(row: Any, names: dict[int, str]) -> dict[str, Any]:
    """The :class:`AlertSummary` fields of an ``alerts`` row (ORM object or Core row)."""
    return {
        "id": row.id,
        "status": row.status,
        "severity": row.severity,
        "device_id": row.device_id,
        "site": row.site,
        "rule_id": row.rule_id,
        "rule": names.get(row.rule_id, str(row.rule_id)),
        "count": row.count,
        "last_value": row.last_value,
        "message": row.message,
        "opened_at": utc(row.opened_at),
        "last_seen_at": utc(row.last_seen_at),
        "acknowledged_at": utc(row.acknowledged_at),
        "acknowledged_by": row.acknowledged_by,
        "resolved_at": utc(row.resolved_at),
        "resolved_by": row.resolved_by,
    }


def list_query(
    actor: Actor,
    status: str | None = None,
    severity: str | None = None,
    device: str | None = None,
    site: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
) -> Select[Any]:
    """The list query, newest first; each filter has an index led by its column."""
    c = alerts.c
    q = select(alerts)
    if status:
        q = q.where(c.status == status)
    if severity:
        q = q.where(c.severity == severity)
    if device:
        q = q.where(c.device_id == device)
    if site:
        q = q.where(c.site == site)
    if since is not None:
        q = q.where(c.opened_at >= since)
    return visible(q, actor).order_by(c.opened_at.desc(), c.id.desc()).limit(limit)


def list_alerts(
    db: Connection | Session,
    actor: Actor,
    status: str | None = None,
    severity: str | None = None,
    device: str | None = None,
    site: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
) -> list[AlertSummary]:
    """Alerts visible to ``actor`` matching every given filter, newest first."""
    require(actor, "viewer", "list alerts")
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r} (use {', '.join(STATUSES)})")
    if limit < 1:
        raise ValueError("--limit must be at least 1")
    rows = list(db.execute(list_query(actor, status, severity, device, site, since, limit)))
    names = rule_names(db, (r.rule_id for r in rows))
    return [AlertSummary(**summary_fields(r, names)) for r in rows]


def list_rules(db: Connection | Session, actor: Actor) -> list[Any]:
    """Every rule (``alert_rules`` rows, by name), enabled or not."""
    require(actor, "viewer", "list alert rules")
    return list(db.execute(select(alert_rules).order_by(alert_rules.c.name)))
