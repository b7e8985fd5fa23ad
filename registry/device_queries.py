"""What ``iot devices list`` and ``iot devices show`` read, through SQLAlchemy Core alone (no ORM):
each function takes a ``Connection`` or an ORM ``Session``. Changes are :mod:`registry.devices`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from core.timefmt import utc as _utc
from registry.auth import Actor, require
from registry.tables import devices

if TYPE_CHECKING:
    from sqlalchemy import Connection, Row
    from sqlalchemy.orm import Session


DEVICE_STATUSES = ("provisioned", "active", "disabled", "retired")


class DeviceNotFound(LookupError):
    pass


def as_dict(d: Any) -> dict[str, Any]:
    """The registry row (ORM object or Core row) as plain data (never the secret hash)."""
    return {
        "id": d.id,
        "type": d.type,
        "site": d.site,
        "labels": d.labels or {},
        "status": d.status,
        "online": d.online,
        "created_at": _utc(d.created_at),
        "last_seen_at": _utc(d.last_seen_at),
        "firmware_version": d.firmware_version,
        "has_secret": d.secret_hash is not None,
        "gateway": d.gateway,
    }


def list_devices(
    db: Connection | Session,
    actor: Actor,
    status: str | None = None,
    type: str | None = None,
    site: str | None = None,
) -> list[Row[Any]]:
    """Devices the actor may see, filtered, ordered by id (``devices`` rows)."""
    require(actor, "viewer", "list devices", site)
    c = devices.c
    q = select(devices).order_by(c.id)
    if status:
        q = q.where(c.status == status)
    if type:
        q = q.where(c.type == type)
    if site:
        q = q.where(c.site == site)
    if actor.sites is not None:
        q = q.where(c.site.in_(actor.sites))
    return list(db.execute(q))


def read_device(db: Connection | Session, actor: Actor, device_id: str) -> Row[Any]:
    """One device the actor may see (its ``devices`` row); :class:`DeviceNotFound` otherwise."""
    require(actor, "viewer", "show devices")
    device = db.execute(select(devices).where(devices.c.id == device_id)).first()
    if device is None or not actor.can_see_site(device.site):
        raise DeviceNotFound(f"no device {device_id}")
    return device
