"""What the ingest daemon needs from the registry: a directory snapshot and batched activity.

Lifecycle: ``RegistryStore(engine)``; ``connect()`` checks reachability and the schema
(:class:`registry.db.SchemaNotMigrated`); then any calls; ``close()``. Connection failures
raise :class:`ingest.stores.StoreUnavailable` so the daemon can retry later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, or_, select, update

from core.model import GatewayClaim, StatusChange
from core.timefmt import from_epoch as _dt
from registry import tables
from registry.db import EngineStore

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    id: str
    type: str
    site: str | None
    status: str
    gateway: str | None = None  # the gateway it publishes through (None: it publishes for itself)


DEVICES = tables.devices
AUDIT = tables.audit_log
INGEST_ACTOR = "iot-ingest"  # who the audit trail names for what the daemon refused
_SEEN = bindparam("b_seen", type_=DEVICES.c.last_seen_at.type)
_BUMP_SEEN = (
    update(DEVICES)
    .where(DEVICES.c.id == bindparam("b_id"))
    .where(or_(DEVICES.c.last_seen_at.is_(None), DEVICES.c.last_seen_at < _SEEN))
    .values(last_seen_at=_SEEN)
)
_ACTIVATE = (
    update(DEVICES).where(DEVICES.c.id == bindparam("b_id"), DEVICES.c.status == "provisioned").values(status="active")
)
_AT = bindparam("b_at", type_=DEVICES.c.online_at.type)
_ONLINE = (
    update(DEVICES)
    .where(DEVICES.c.id == bindparam("b_id"))
    .where(or_(DEVICES.c.online_at.is_(None), DEVICES.c.online_at <= _AT))
    .values(online=bindparam("b_online"), online_at=_AT)
)

_FIRMWARE = update(DEVICES).where(DEVICES.c.id == bindparam("b_id")).values(firmware_version=bindparam("b_fw"))


class RegistryStore(EngineStore):
    """The device directory over a SQLAlchemy engine (PostgreSQL or SQLite)."""

    def devices(self) -> dict[str, DeviceInfo]:
        """The whole directory (id → type, site, status); the daemon caches and refreshes it."""

        def run() -> dict[str, DeviceInfo]:
            cols = DEVICES.c
            with self.engine.connect() as conn:
                rows = conn.execute(select(cols.id, cols.type, cols.site, cols.status, cols.gateway))
                return {r.id: DeviceInfo(r.id, r.type, r.site, r.status, r.gateway) for r in rows}

        return self._guard(run)

    def record_activity(self, last_seen: Mapping[str, float], status: Sequence[StatusChange]) -> None:
        """One transaction: bump last seen (only forward), provisioned → active on first
        message, apply online/offline changes (the newest per device wins, also against what is
        stored: an older report written later by another worker changes nothing). Unknown ids: ignored.
        Every update is commutative, so several workers may write in any order."""
        seen = dict(last_seen)
        online: dict[str, tuple[bool, float]] = {}
        for change in sorted(status, key=lambda c: c.at):
            online[change.device_id] = (change.online, change.at)
            seen[change.device_id] = max(seen.get(change.device_id, change.at), change.at)
        if not seen:
            return

        def run() -> None:
            with self.engine.begin() as conn:
                conn.execute(_BUMP_SEEN, [{"b_id": d, "b_seen": _dt(t)} for d, t in seen.items()])
                conn.execute(_ACTIVATE, [{"b_id": d} for d in seen])
                if online:
                    rows = [{"b_id": d, "b_online": o, "b_at": _dt(at)} for d, (o, at) in online.items()]
                    conn.execute(_ONLINE, rows)

        self._guard(run)

    def record_claims(self, claims: Sequence[GatewayClaim]) -> None:
        """Audit entries for refused gateway claims (``gateway.refused``, by the ingest daemon)."""
        if not claims:
            return

        def run() -> None:
            now = datetime.now(UTC)
            rows = [
                {
                    "at": now,
                    "actor": INGEST_ACTOR,
                    "action": "gateway.refused",
                    "target": f"device:{c.device_id}",
                    "detail": {
                        "via": c.via,
                        "registered": c.registered,
                        "topic": c.topic,
                        "first_at": _dt(c.first_at).isoformat(),
                        "messages": c.count,
                    },
                }
                for c in claims
            ]
            with self.engine.begin() as conn:
                conn.execute(AUDIT.insert(), rows)

        self._guard(run)

    def record_firmware(self, versions: Mapping[str, str]) -> None:
        """Set the current firmware version of devices (from firmware reports); one transaction."""
        if not versions:
            return

        def run() -> None:
            with self.engine.begin() as conn:
                conn.execute(_FIRMWARE, [{"b_id": d, "b_fw": v[:64]} for d, v in versions.items()])

        self._guard(run)

    def register(self, devices: Iterable[tuple[str, str]], gateways: Mapping[str, str] | None = None) -> None:
        """Auto-register (id, type) pairs as active devices (dev setups), each behind the gateway
        ``gateways`` names for it (first seen through), if any; existing ids untouched."""
        wanted = dict(devices)
        behind = dict(gateways or {})
        if not wanted:
            return

        def run() -> None:
            table = DEVICES
            now = datetime.now(UTC)
            with self.engine.begin() as conn:
                known = set(conn.scalars(select(table.c.id).where(table.c.id.in_(list(wanted)))))
                rows: list[dict[str, Any]] = [
                    {
                        "id": d,
                        "type": t or "generic",
                        "site": None,
                        "labels": {},
                        "status": "active",
                        "online": False,
                        "created_at": now,
                        "gateway": behind.get(d),
                    }
                    for d, t in wanted.items()
                    if d not in known
                ]
                if not rows:
                    return
                if conn.dialect.name in ("postgresql", "sqlite"):
                    from sqlalchemy.dialects import postgresql, sqlite

                    mod = postgresql if conn.dialect.name == "postgresql" else sqlite
                    conn.execute(mod.insert(table).on_conflict_do_nothing(), rows)
                else:
                    conn.execute(table.insert(), rows)

        self._guard(run)
