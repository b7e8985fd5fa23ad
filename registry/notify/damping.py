"""Damping: a flapping (rule, device) is grouped, per channel, into one notification per window.

Policy (README, "Notifications"): on each channel, an alert of a (rule, device) pair is
*announced* (its notifications are sent) unless another alert of the same pair was announced on
that channel less than ``window_s`` before; then it is *held back*: each of its notifications on
that channel (opened, acknowledged, resolved, reminders) is marked ``suppressed`` instead of sent,
and stays in the outbox (``iot alerts show`` lists it). The next announced alert of the pair
carries ``suppressed`` = how many alerts were held back since the previous announcement. If the
window ends while the pair's latest alert is still open and held back, :func:`flush` announces it
then: a flapping that ends open is never silent. The alert history is untouched; the decision is
the notifier's, taken when it claims a row (``outbox.claim``), in the claim's transaction.

An alert's *first row* on a channel (its opened notification, or the first transition the channel
takes) carries the decision; later rows of that alert follow it. Database I/O only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from registry.models import Alert
from registry.notify.models import NotifyOutbox, OutboxStatus

SUPPRESSED = OutboxStatus.SUPPRESSED
COUNT_KEY = "suppressed"  # in the payload: held-back alerts since the previous announcement


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _first_row_id(session: Session, alert_id: int, channel_id: int) -> int | None:
    return session.scalar(
        select(func.min(NotifyOutbox.id)).where(
            NotifyOutbox.alert_id == alert_id, NotifyOutbox.channel_id == channel_id
        )
    )


def _pair_first_rows(rule_id: int, device_id: str, channel_id: int) -> Any:
    """The first row of each alert of the pair on the channel (a subquery of ids)."""
    return (
        select(func.min(NotifyOutbox.id))
        .join(Alert, Alert.id == NotifyOutbox.alert_id)
        .where(Alert.rule_id == rule_id, Alert.device_id == device_id, NotifyOutbox.channel_id == channel_id)
        .group_by(NotifyOutbox.alert_id)
        .scalar_subquery()
    )


def _last_announced(session: Session, alert: Alert, channel_id: int, before_id: int) -> NotifyOutbox | None:
    firsts = _pair_first_rows(alert.rule_id, alert.device_id, channel_id)
    return session.scalar(
        select(NotifyOutbox)
        .where(NotifyOutbox.id.in_(firsts), NotifyOutbox.id < before_id, NotifyOutbox.status != SUPPRESSED)
        .order_by(NotifyOutbox.created_at.desc(), NotifyOutbox.id.desc())
        .limit(1)
    )


def _held_back(session: Session, alert: Alert, channel_id: int, after_alert: int) -> int:
    firsts = _pair_first_rows(alert.rule_id, alert.device_id, channel_id)
    return int(
        session.scalar(
            select(func.count())
            .select_from(NotifyOutbox)
            .where(
                NotifyOutbox.id.in_(firsts),
                NotifyOutbox.status == SUPPRESSED,
                NotifyOutbox.alert_id > after_alert,
                NotifyOutbox.alert_id < alert.id,
            )
        )
        or 0
    )


def with_count(body: dict[str, Any], held_back: int) -> dict[str, Any]:
    p = dict(body)
    p[COUNT_KEY] = held_back
    if held_back:
        p["summary"] = f"{p.get('summary', '')} (+{held_back} more of this rule on this device since the last notice)"
    return p


def decide(session: Session, row: NotifyOutbox, window_s: float) -> bool:
    """True: send ``row``; False: it is now ``suppressed``. The row is claimed by the caller."""
    if window_s <= 0:
        return True
    first = _first_row_id(session, row.alert_id, row.channel_id)
    if first != row.id:  # a later notification of the alert: as its first one went
        if session.scalar(select(NotifyOutbox.status).where(NotifyOutbox.id == first)) == SUPPRESSED:
            row.status, row.claimed_by = SUPPRESSED, None
            return False
        return True
    if COUNT_KEY in (row.payload or {}):
        return True  # decided before (a retry), or announced by flush
    alert = session.get(Alert, row.alert_id)
    if alert is None:
        return True
    prev = _last_announced(session, alert, row.channel_id, row.id)
    if prev is not None and _utc(prev.created_at) > _utc(row.created_at) - timedelta(seconds=window_s):
        row.status, row.claimed_by = SUPPRESSED, None
        return False
    row.payload = with_count(row.payload, _held_back(session, alert, row.channel_id, prev.alert_id if prev else 0))
    return True


def flush(session: Session, now: datetime, window_s: float) -> int:
    """Announce each held-back alert that is still open once its pair's window has ended; in the
    caller's transaction. A conditional update: several notifiers flush a row once. Returns how many."""
    if window_s <= 0:
        return 0
    rows = session.execute(
        select(NotifyOutbox, Alert)
        .join(Alert, Alert.id == NotifyOutbox.alert_id)
        .where(NotifyOutbox.status == SUPPRESSED, Alert.status == "open")
        .order_by(NotifyOutbox.id)
    ).all()
    flushed = 0
    for row, alert in rows:
        if _first_row_id(session, alert.id, row.channel_id) != row.id:
            continue
        prev = _last_announced(session, alert, row.channel_id, row.id)
        if prev is not None and _utc(prev.created_at) > now - timedelta(seconds=window_s):
            continue
        body = with_count(row.payload, _held_back(session, alert, row.channel_id, prev.alert_id if prev else 0))
        res = session.execute(
            update(NotifyOutbox)
            .where(NotifyOutbox.id == row.id, NotifyOutbox.status == SUPPRESSED)
            .values(status=OutboxStatus.PENDING, due_at=now, created_at=now, claimed_by=None, payload=body)
        )
        flushed += res.rowcount  # type: ignore[attr-defined]
    return flushed
