"""The actor behind ``IOT_API_KEY`` for commands that read data outside the registry tables
(time series, dead letters) and so must not insist on a migrated registry.

The bootstrap rule of :mod:`registry.auth` holds here too: a registry that does not exist yet,
or has no ``api_keys`` table, has no keys, so the caller is ``local-admin``. A registry that
cannot be reached is an error (never a reason to let the caller in).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, select

from registry.auth import BOOTSTRAP_ACTOR, Actor, authenticate, require
from registry.db import make_engine
from registry.device_queries import DeviceNotFound
from registry.tables import devices


def _sqlite_missing(url: str) -> bool:
    if not url.startswith("sqlite"):
        return False
    path = url.split("///", 1)[-1]
    return bool(path) and path != ":memory:" and not Path(path).exists()


def authorise(registry_url: str, api_key: str | None, role: str, action: str, device_id: str | None = None) -> Actor:
    """The actor behind ``api_key``, checked for ``role``; PermissionDenied on a missing, unknown or
    disabled key once keys exist, or too low a role. With ``device_id``, a site-limited actor must
    see that device: one registered at one of its sites (else :class:`DeviceNotFound`, as
    ``iot devices show`` answers)."""
    if _sqlite_missing(registry_url):
        return BOOTSTRAP_ACTOR
    engine = make_engine(registry_url)
    try:
        tables = inspect(engine).get_table_names()
        if "api_keys" not in tables:
            return BOOTSTRAP_ACTOR
        with engine.connect() as conn:
            actor = authenticate(conn, api_key)
            require(actor, role, action)
            if device_id is not None and actor.sites is not None:
                device = conn.execute(select(devices.c.site).where(devices.c.id == device_id)).first()
                if device is None or not actor.can_see_site(device.site):
                    raise DeviceNotFound(f"no device {device_id}")
            return actor
    finally:
        engine.dispose()
