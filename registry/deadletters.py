"""Dead letters in the registry database: what could not be stored, kept byte for byte up to
the payload size limit; beyond it, a bounded prefix with the original size and SHA-256
(``DeadLetter.bounded``), which replay skips: a prefix is not the message.

Lifecycle as for the other stores: ``DeadLetterStore(engine)``, ``connect()`` (reachability and
schema), any calls. Connection failures raise :class:`ingest.stores.StoreUnavailable` so the
daemon can spool the batch and retry.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, func, insert, select, update

from core.model import DeadLetter
from core.timefmt import utc as _utc
from registry import tables
from registry.db import EngineStore

T = TypeVar("T")
TABLE = tables.dead_letters
_C = TABLE.c
_DEVICE_ID_MAX = 64
_REASON_MAX = 32


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """A stored dead letter."""

    id: int
    received_at: datetime
    reason: str
    topic: str
    device_id: str | None
    detail: str
    payload: bytes
    replayed_at: datetime | None
    original_size: int | None = None
    payload_sha256: str | None = None

    @property
    def truncated(self) -> bool:
        """True when ``payload`` is only a prefix of the message (it was over the size limit)."""
        return self.original_size is not None

    def payload_text(self) -> tuple[str, str]:
        """``(text, "utf-8")`` when the payload is UTF-8, else ``(base64, "base64")``."""
        try:
            return self.payload.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return base64.b64encode(self.payload).decode("ascii"), "base64"

    def as_dict(self) -> dict[str, Any]:
        text, encoding = self.payload_text()
        return {
            "id": self.id,
            "received_at": self.received_at,
            "reason": self.reason,
            "device_id": self.device_id,
            "topic": self.topic,
            "detail": self.detail,
            "payload": text,
            "payload_encoding": encoding,
            "payload_bytes": len(self.payload),
            "original_bytes": self.original_size if self.original_size is not None else len(self.payload),
            "truncated": self.truncated,
            "payload_sha256": self.payload_sha256 or hashlib.sha256(self.payload).hexdigest(),
            "replayed_at": self.replayed_at,
        }


RECORD_COLUMNS = (
    "id", "received_at", "reason", "device_id", "topic", "detail", "payload", "payload_encoding", "payload_bytes",
    "original_bytes", "truncated", "payload_sha256", "replayed_at",
)  # fmt: skip
"""The keys of :meth:`DeadLetterRecord.as_dict`, in order (a CSV header with no rows)."""

Records = list[DeadLetterRecord]
Ids = list[int]


def _clean(text: str) -> str:
    """Text any database takes: no NUL (PostgreSQL refuses it), no lone surrogates."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _row(letter: DeadLetter) -> dict[str, Any]:
    device = letter.device_id
    if device is not None and (not device or len(device) > _DEVICE_ID_MAX):
        device = None
    size = getattr(letter, "original_size", None)  # letters spooled by an older version lack it
    digest = getattr(letter, "sha256", None) if size is not None else None
    return {
        "received_at": datetime.fromtimestamp(letter.received_at, UTC),
        "topic": _clean(letter.topic),
        "device_id": _clean(device) if device else None,
        "reason": _clean(str(letter.reason))[:_REASON_MAX],
        "detail": _clean(letter.detail),
        "payload": bytes(letter.payload),
        "replayed_at": None,
        "key": letter_key(letter.topic, bytes(letter.payload), digest),
        "original_size": size,
        "payload_sha256": digest,
    }


def _upsert(dialect: str) -> Any:
    """INSERT …, or on a known key: refresh the row and make it pending again (it failed again)."""
    if dialect not in ("postgresql", "sqlite"):
        return insert(TABLE)
    module = importlib.import_module(f"sqlalchemy.dialects.{dialect}")
    stmt = module.insert(TABLE)
    return stmt.on_conflict_do_update(
        index_elements=[_C.key],
        set_={
            "received_at": stmt.excluded.received_at,
            "reason": stmt.excluded.reason,
            "detail": stmt.excluded.detail,
            "replayed_at": None,
        },
    )


def letter_key(topic: str, payload: bytes, payload_sha256: str | None = None) -> str:
    """Idempotency key: the same message dead-lettered again (redelivery) updates its row. A
    truncated letter is keyed by the hash of its whole payload, so two large messages that
    share a prefix stay two rows."""
    body = payload if payload_sha256 is None else b"sha256:" + payload_sha256.encode()
    return hashlib.sha256(topic.encode("utf-8", "surrogateescape") + b"\0" + body).hexdigest()


def _record(r: Any) -> DeadLetterRecord:
    received = _utc(r.received_at)
    assert received is not None
    return DeadLetterRecord(
        id=int(r.id),
        received_at=received,
        reason=r.reason,
        topic=r.topic,
        device_id=r.device_id,
        detail=r.detail or "",
        payload=bytes(r.payload),
        replayed_at=_utc(r.replayed_at),
        original_size=None if r.original_size is None else int(r.original_size),
        payload_sha256=r.payload_sha256,
    )


class DeadLetterStore(EngineStore):
    """Dead letters over a SQLAlchemy engine (PostgreSQL or SQLite)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._upsert = _upsert(engine.dialect.name)

    def write(self, letters: Sequence[DeadLetter]) -> None:
        """Store ``letters`` in one transaction."""
        if not letters:
            return
        rows = list({r["key"]: r for r in map(_row, letters)}.values())

        def run() -> None:
            with self.engine.begin() as conn:
                conn.execute(self._upsert, rows)

        self._guard(run)

    def list(
        self,
        reason: str | None = None,
        device_id: str | None = None,
        since: datetime | None = None,
        replayed: bool | None = None,
        limit: int = 100,
        sites: Sequence[str] | None = None,
    ) -> Records:
        """Dead letters, newest first; with ``sites``, only those of devices registered there."""
        q = self._where(select(TABLE), reason, device_id, since, replayed, sites)
        q = q.order_by(_C.received_at.desc(), _C.id.desc()).limit(limit)
        return self._fetch(q)

    def get(self, id: int) -> DeadLetterRecord | None:
        found = self.get_many([id])
        return found[0] if found else None

    def get_many(self, ids: Iterable[int], sites: Sequence[str] | None = None) -> Records:
        """The dead letters with these ids (missing ones left out), oldest id first."""
        wanted = sorted(set(ids))
        if not wanted:
            return []
        q = self._where(select(TABLE).where(_C.id.in_(wanted)), None, None, None, None, sites)
        return self._fetch(q.order_by(_C.id))

    def ids(self, reason: str | None = None, replayed: bool | None = None, sites: Sequence[str] | None = None) -> Ids:
        """Ids matching the filter, oldest first (a snapshot for replaying in chunks)."""
        q = self._where(select(_C.id), reason, None, None, replayed, sites).order_by(_C.id)

        def run() -> Ids:
            with self.engine.connect() as conn:
                return [int(i) for i in conn.execute(q).scalars()]

        return self._guard(run)

    def count(self, reason: str | None = None, replayed: bool | None = None) -> int:
        q = self._where(select(func.count()).select_from(TABLE), reason, None, None, replayed)

        def run() -> int:
            with self.engine.connect() as conn:
                return int(conn.execute(q).scalar_one())

        return self._guard(run)

    def mark_replayed(self, ids: Iterable[int], at: datetime | None = None) -> int:
        """Set ``replayed_at`` (default now) on these ids; returns how many rows changed."""
        wanted = sorted(set(ids))
        if not wanted:
            return 0
        when = _utc(at) or datetime.now(UTC)

        def run() -> int:
            with self.engine.begin() as conn:
                done = conn.execute(update(TABLE).where(_C.id.in_(wanted)).values(replayed_at=when))
                return int(done.rowcount)

        return self._guard(run)

    @staticmethod
    def _where(
        q: Any,
        reason: str | None,
        device_id: str | None,
        since: datetime | None,
        replayed: bool | None,
        sites: Sequence[str] | None = None,
    ) -> Any:
        if sites is not None:  # a site-limited reader: letters of devices registered at its sites
            q = q.where(_C.device_id.in_(select(tables.devices.c.id).where(tables.devices.c.site.in_(list(sites)))))
        if reason is not None:
            q = q.where(_C.reason == reason)
        if device_id is not None:
            q = q.where(_C.device_id == device_id)
        if since is not None:
            q = q.where(_C.received_at >= _utc(since))
        if replayed is not None:
            q = q.where(_C.replayed_at.is_not(None) if replayed else _C.replayed_at.is_(None))
        return q

    def _fetch(self, q: Any) -> Records:
        def run() -> Records:
            with self.engine.connect() as conn:
                return [_record(r) for r in conn.execute(q)]

        return self._guard(run)


Publish = Callable[[Sequence[tuple[str, bytes]]], Sequence[bool]]


def replay(store: DeadLetterStore, ids: Sequence[int], publish: Publish, chunk: int = 200) -> int:
    """Republish the raw payloads of ``ids`` to their topics, chunk by chunk, and mark the ones
    the broker acknowledged as replayed. ``publish`` returns one ok-flag per message (or raises,
    leaving the chunk unmarked). Truncated letters are skipped (left pending): their payload is
    only a prefix. Returns how many were replayed."""
    replayed = 0
    for start in range(0, len(ids), chunk):
        letters = [d for d in store.get_many(ids[start : start + chunk]) if not d.truncated]
        if not letters:
            continue
        acked = publish([(d.topic, d.payload) for d in letters])
        done = [d.id for d, ok in zip(letters, acked, strict=True) if ok]
        replayed += store.mark_replayed(done)
    return replayed
