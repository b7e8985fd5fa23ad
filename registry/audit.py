"""The audit trail: who changed what, and when. Entries are added by registry.auth.record_audit.
Read through SQLAlchemy Core (a ``Connection`` or an ORM ``Session``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import literal, or_, select

from registry.auth import Actor, require
from registry.tables import api_keys, audit_log, devices

if TYPE_CHECKING:
    from sqlalchemy import Connection, Row
    from sqlalchemy.orm import Session


def query_audit(
    session: Connection | Session,
    actor: Actor,
    since: datetime | None = None,
    who: str | None = None,
    action: str | None = None,
    target: str | None = None,
    limit: int = 200,
) -> list[Row[Any]]:
    """Newest first; operators and admins may read the trail. A site-limited actor sees the
    entries about devices now at its sites and those made by keys within its scope."""
    require(actor, "operator", "read the audit trail")
    c = audit_log.c
    q = select(audit_log).order_by(c.at.desc(), c.id.desc()).limit(limit)
    if actor.sites is not None:
        at_sites = select(literal("device:").concat(devices.c.id)).where(devices.c.site.in_(actor.sites))
        keys = [k.name for k in session.execute(select(api_keys.c.name, api_keys.c.sites)) if actor.covers(k.sites)]
        q = q.where(or_(c.target.in_(at_sites), c.actor.in_(keys)))
    if since is not None:
        q = q.where(c.at >= since)
    if who:
        q = q.where(c.actor == who)
    if action:
        q = q.where(c.action.startswith(action))
    if target:
        q = q.where(c.target == target)
    return list(session.execute(q))


COLUMNS = ("id", "at", "actor", "action", "target", "detail")
"""The keys of :func:`as_dict`, in order (a CSV header with no rows)."""


def as_dict(e: Any) -> dict[str, Any]:
    """An ``audit_log`` row (Core row or ORM object) as plain data."""
    at = e.at.replace(tzinfo=UTC) if e.at.tzinfo is None else e.at
    return {"id": e.id, "at": at, "actor": e.actor, "action": e.action, "target": e.target, "detail": e.detail}
