"""The notification outbox in the registry database: enqueue, claim, record. Database I/O only.

``enqueue`` runs inside the caller's transaction (the one that opens, acknowledges or resolves
the alert), so a notification exists if and only if its transition committed. Each row has a
unique ``key`` (alert:channel:transition, reminders add their number), so no transition is
queued twice. ``claim`` takes due rows for one worker — ``SELECT … FOR UPDATE SKIP LOCKED`` on
PostgreSQL, and on every database a conditional UPDATE that only one worker can win — by
pushing ``due_at`` out by a lease; ``record`` stores the attempt and either marks the row sent or
schedules the retry. The notifier claims one row of one channel at a time, and only while no
attempt on that channel is in flight; a claim also applies damping (:mod:`registry.notify.damping`),
marking held-back rows ``suppressed``. A worker that dies mid-send leaves the row to be retried
when its lease ends (at-least-once in that one case; receivers can drop repeats by the
``X-IOT-Delivery`` key).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from core.backoff import ceiling, jittered
from core.timefmt import iso
from core.timefmt import utc as _utc
from registry.models import Alert, AlertRule, Device
from registry.notify import damping
from registry.notify.models import NotifyAttempt, NotifyChannel, NotifyOutbox, OutboxStatus
from registry.notify.render import Route, payload

_rng = random.Random()  # jitter from its own generator, not the global one


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: ``min(cap, base * 2**(n-1))`` scaled by 0.5 to 1.0."""

    base_s: float = 2.0
    cap_s: float = 300.0
    max_attempts: int = 25
    lease_s: float = 60.0

    def delay(self, attempt: int, rand: Callable[[], float] = _rng.random) -> float:
        return jittered(ceiling(attempt, self.base_s, self.cap_s), rand)


@dataclass(frozen=True)
class Delivery:
    """One claimed notification, with what a sender needs."""

    outbox_id: int
    key: str
    transition: str
    kind: str
    target: str
    options: dict[str, Any]
    secret_name: str | None
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class AttemptResult:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    elapsed_ms: int = 0


def _iso(dt: datetime | None) -> str | None:
    return iso(dt) if dt is not None else None


def route_of(ch: NotifyChannel) -> Route:
    return Route(ch.min_severity, ch.site, tuple(ch.events or ()))


def _snapshot(session: Session, alert: Alert) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    rule = session.get(AlertRule, alert.rule_id)
    device = session.get(Device, alert.device_id)
    a = {
        "id": alert.id,
        "status": alert.status,
        "severity": alert.severity,
        "message": alert.message,
        "count": alert.count,
        "last_value": alert.last_value,
        "opened_at": _iso(alert.opened_at),
        "last_seen_at": _iso(alert.last_seen_at),
        "acknowledged_at": _iso(alert.acknowledged_at),
        "acknowledged_by": alert.acknowledged_by,
        "resolved_at": _iso(alert.resolved_at),
        "resolved_by": alert.resolved_by,
    }
    r = {
        "id": alert.rule_id,
        "name": rule.name if rule else str(alert.rule_id),
        "kind": rule.kind if rule else None,
        "measurement": rule.measurement if rule else None,
        "field": rule.field if rule else None,
        "op": rule.op if rule else None,
        "threshold": rule.threshold if rule else None,
    }
    d = {"id": alert.device_id, "type": device.type if device else None, "site": alert.site}
    return a, r, d


def enqueue(session: Session, changes: Sequence[tuple[Alert, str, str | None]]) -> int:
    """Queue ``(alert, transition, actor)`` for every enabled channel that wants it; in the
    caller's transaction. Returns the number of rows added."""
    if not changes:
        return 0
    channels = list(session.scalars(select(NotifyChannel).where(NotifyChannel.enabled.is_(True))))
    if not channels:
        return 0
    session.flush()  # alert ids
    now = datetime.now(UTC)
    added = 0
    for alert, transition, actor in changes:
        wanting = [c for c in channels if route_of(c).wants(alert.severity, alert.site, transition)]
        if not wanting:
            continue
        a, r, d = _snapshot(session, alert)
        for ch in wanting:
            key = f"{alert.id}:{ch.id}:{transition}"
            session.add(
                NotifyOutbox(
                    key=key,
                    alert_id=alert.id,
                    channel_id=ch.id,
                    transition=transition,
                    payload=payload(transition=transition, delivery=key, alert=a, rule=r, device=d, actor=actor),
                    status=OutboxStatus.PENDING,
                    attempts=0,
                    created_at=now,
                    due_at=now,
                )
            )
            added += 1
    return added


def _insert_ignore(session: Session, values: dict[str, Any]) -> int:
    """INSERT … ON CONFLICT (key) DO NOTHING; 1 if the row is new."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(NotifyOutbox).values(**values).on_conflict_do_nothing(index_elements=["key"])
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(NotifyOutbox).values(**values).on_conflict_do_nothing(index_elements=["key"])
    return len(session.execute(stmt.returning(NotifyOutbox.id)).all())


def enqueue_reminders(session: Session, now: datetime) -> int:
    """For channels with ``renotify_minutes``: one reminder per full interval an alert has stayed
    open (unacknowledged), keyed by its number so any number of notifiers add it once. Only the
    latest interval is queued, so a notifier that was down does not send a burst."""
    added = 0
    channels = session.scalars(
        select(NotifyChannel).where(NotifyChannel.enabled.is_(True), NotifyChannel.renotify_minutes > 0)
    )
    for ch in channels:
        route = route_of(ch)
        interval = timedelta(minutes=ch.renotify_minutes)
        q = select(Alert).where(Alert.status == "open", Alert.opened_at <= now - interval)
        if ch.site is not None:
            q = q.where(Alert.site == ch.site)
        for alert in session.scalars(q):
            if not route.wants(alert.severity, alert.site, "opened"):
                continue
            opened = _utc(alert.opened_at) or now
            n = int((now - opened) / interval)
            key = f"{alert.id}:{ch.id}:reminder:{n}"
            a, r, d = _snapshot(session, alert)
            body = payload(
                transition="reminder",
                delivery=key,
                alert=a,
                rule=r,
                device=d,
                open_minutes=int((now - opened).total_seconds() // 60),
            )
            added += _insert_ignore(
                session,
                {
                    "key": key,
                    "alert_id": alert.id,
                    "channel_id": ch.id,
                    "transition": "reminder",
                    "payload": body,
                    "status": OutboxStatus.PENDING,
                    "attempts": 0,
                    "created_at": now,
                    "due_at": now,
                },
            )
    return added


@dataclass(frozen=True)
class Claimed:
    """What one claim took: notifications to send now, and how many it marked ``suppressed``."""

    deliveries: list[Delivery]
    suppressed: int = 0


def _busy_channels(now: datetime) -> Any:
    """Channels with an attempt in flight: a row claimed by some worker whose lease still runs."""
    return select(NotifyOutbox.channel_id).where(
        NotifyOutbox.status == OutboxStatus.PENDING, NotifyOutbox.claimed_by.is_not(None), NotifyOutbox.due_at > now
    )


def channels_due(engine: Engine, now: datetime) -> list[int]:
    """Channels with due rows and no attempt in flight (on any worker), the longest waiting first."""
    with Session(engine) as session:
        q = (
            select(NotifyOutbox.channel_id)
            .where(
                NotifyOutbox.status == OutboxStatus.PENDING,
                NotifyOutbox.due_at <= now,
                NotifyOutbox.channel_id.not_in(_busy_channels(now)),
            )
            .group_by(NotifyOutbox.channel_id)
            .order_by(func.min(NotifyOutbox.due_at))
        )
        return [int(c) for c in session.scalars(q)]


def sent_since(engine: Engine, channel_id: int, since: datetime) -> int:
    """Notifications a channel delivered since ``since`` (by every worker): what its rate limit counts."""
    with Session(engine) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(NotifyAttempt)
                .join(NotifyOutbox, NotifyOutbox.id == NotifyAttempt.outbox_id)
                .where(NotifyOutbox.channel_id == channel_id, NotifyAttempt.ok.is_(True), NotifyAttempt.at >= since)
            )
            or 0
        )


def claim(
    engine: Engine,
    worker: str,
    now: datetime,
    limit: int,
    lease_s: float,
    *,
    channel_id: int | None = None,
    damping_s: float = 0.0,
) -> Claimed:
    """Due rows for ``worker`` (of one channel, if given, and only while no other attempt on it is
    in flight), each claimed by exactly one worker until ``now + lease_s``. Rows that damping holds
    back (:func:`registry.notify.damping.decide`) are marked ``suppressed`` on the way."""
    until = now + timedelta(seconds=lease_s)
    with Session(engine) as session, session.begin():
        q = (
            select(NotifyOutbox.id)
            .where(NotifyOutbox.status == OutboxStatus.PENDING, NotifyOutbox.due_at <= now)
            .order_by(NotifyOutbox.due_at, NotifyOutbox.id)
            .limit(limit + 50)
        )
        if channel_id is not None:
            q = q.where(NotifyOutbox.channel_id == channel_id, NotifyOutbox.channel_id.not_in(_busy_channels(now)))
        if session.get_bind().dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        ids = list(session.scalars(q))
        won: list[int] = []
        suppressed = 0
        for i in ids:
            if len(won) >= limit:
                break
            res = session.execute(
                update(NotifyOutbox)
                .where(NotifyOutbox.id == i, NotifyOutbox.status == OutboxStatus.PENDING, NotifyOutbox.due_at <= now)
                .values(due_at=until, claimed_by=worker)
            )
            if res.rowcount != 1:  # type: ignore[attr-defined]
                continue
            row = session.get(NotifyOutbox, i)
            if row is not None and not damping.decide(session, row, damping_s):
                suppressed += 1
                session.flush()
                continue
            won.append(i)
        if not won:
            return Claimed([], suppressed)
        session.flush()
        rows = session.execute(
            select(NotifyOutbox, NotifyChannel)
            .join(NotifyChannel, NotifyChannel.id == NotifyOutbox.channel_id)
            .where(NotifyOutbox.id.in_(won))
            .order_by(NotifyOutbox.id)
        ).all()
        return Claimed(
            [
                Delivery(
                    o.id,
                    o.key,
                    o.transition,
                    c.kind,
                    c.target,
                    dict(c.options or {}),
                    c.secret_name,
                    dict(o.payload),
                    o.attempts,
                )
                for o, c in rows
            ],
            suppressed,
        )


def record(
    engine: Engine,
    d: Delivery,
    outcome: AttemptResult,
    worker: str,
    now: datetime,
    policy: RetryPolicy,
    rand: Callable[[], float] = _rng.random,
) -> str:
    """Store the attempt; mark the row sent, schedule its retry, or give up. Returns the status."""
    with Session(engine) as session, session.begin():
        session.add(
            NotifyAttempt(
                outbox_id=d.outbox_id,
                at=now,
                ok=outcome.ok,
                status_code=outcome.status_code,
                error=(outcome.error or None) and str(outcome.error)[:2000],
                elapsed_ms=outcome.elapsed_ms,
                worker=worker,
            )
        )
        row = session.get(NotifyOutbox, d.outbox_id, with_for_update=True)
        if row is None:  # alert or channel removed meanwhile
            return "gone"
        row.attempts = (row.attempts or 0) + 1
        if outcome.ok:
            row.status, row.sent_at, row.claimed_by = OutboxStatus.SENT, now, None
        elif row.status != OutboxStatus.PENDING or row.claimed_by != worker:
            pass  # our lease ran out and another worker owns the row now: only the attempt is kept
        elif row.attempts >= policy.max_attempts:
            row.status, row.claimed_by = OutboxStatus.FAILED, None
        else:
            row.due_at = now + timedelta(seconds=policy.delay(row.attempts, rand))
            row.claimed_by = None
        return row.status


@dataclass(frozen=True)
class NotificationRecord:
    """One notification of an alert and one of its attempts (or none yet), for `alerts show`."""

    channel: str
    transition: str
    status: str  # an OutboxStatus value
    attempt_at: datetime | None
    ok: bool | None
    status_code: int | None
    error: str | None
    next_at: datetime | None


def attempts_for(session: Session, alert_id: int) -> list[NotificationRecord]:
    """Every notification of an alert and each of its attempts, oldest first (for `alerts show`)."""
    rows = session.execute(
        select(NotifyOutbox, NotifyChannel.name, NotifyAttempt)
        .join(NotifyChannel, NotifyChannel.id == NotifyOutbox.channel_id)
        .outerjoin(NotifyAttempt, NotifyAttempt.outbox_id == NotifyOutbox.id)
        .where(NotifyOutbox.alert_id == alert_id)
        .order_by(NotifyOutbox.id, NotifyAttempt.id)
    ).all()
    return [
        NotificationRecord(
            channel,
            o.transition,
            o.status,
            _utc(att.at) if att else None,
            att.ok if att else None,
            att.status_code if att else None,
            att.error if att else None,
            _utc(o.due_at) if o.status == OutboxStatus.PENDING else None,
        )
        for o, channel, att in rows
    ]
