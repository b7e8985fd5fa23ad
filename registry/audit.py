"""The audit trail: who changed what, and when. Entries are added by registry.auth.record_audit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import literal, or_, select
from sqlalchemy.orm import Session

from registry.auth import Actor, require
from registry.models import ApiKey, AuditEntry, Device


def query_audit(
    session: Session,
    actor: Actor,
    since: datetime | None = None,
    who: str | None = None,
    action: str | None = None,
    target: str | None = None,
    limit: int = 200,
) -> list[AuditEntry]:
    """Newest first; operators and admins may read the trail. A site-limited actor sees the
    entries about devices now at its sites and those made by keys within its scope."""
    require(actor, "operator", "read the audit trail")
    q = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if actor.sites is not None:
        devices = select(literal("device:").concat(Device.id)).where(Device.site.in_(actor.sites))
        keys = [k.name for k in session.scalars(select(ApiKey)) if actor.covers(k.sites)]
        q = q.where(or_(AuditEntry.target.in_(devices), AuditEntry.actor.in_(keys)))
    if since is not None:
        q = q.where(AuditEntry.at >= since)
    if who:
        q = q.where(AuditEntry.actor == who)
    if action:
        q = q.where(AuditEntry.action.startswith(action))
    if target:
        q = q.where(AuditEntry.target == target)
    return list(session.scalars(q))


COLUMNS = ("id", "at", "actor", "action", "target", "detail")
"""The keys of :func:`as_dict`, in order (a CSV header with no rows)."""


def as_dict(e: AuditEntry) -> dict[str, Any]:
    at = e.at.replace(tzinfo=UTC) if e.at.tzinfo is None else e.at
    return {"id": e.id, "at": at, "actor": e.actor, "action": e.action, "target": e.target, "detail": e.detail}
