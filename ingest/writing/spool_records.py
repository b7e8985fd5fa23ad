"""The spool's record format on disk: a version byte, then a self-describing JSON object.

Version 2 (``0x02``)::

    {"items":    [{"type": "point" | "document" | "status" | "dead_letter", <the item's fields>}, ...],
     "origins":  [[topic, payload (base64), received_at], ...],
     "activity": null | {"last_seen": {id: epoch s}, "register": {id: type}, "firmware": {id: version},
                         "gateways": {id: gateway}, "claims": [{<GatewayClaim's fields>}, ...]}}

(``gateways`` and ``claims`` were added later within version 2: a record without them has none.)

Bytes (message payloads) are base64 strings; everything else is plain JSON. Older records are
still read, so an upgrade never strands spooled data: version 1 (``0x01``) carried the registry
activity as ``"extra": {"last_seen": ..., "register": ..., "firmware": ...}``; records before it
are pickles (first byte ``0x80``), read by an unpickler that accepts only the four item classes
(fields added since take their defaults).
"""

from __future__ import annotations

import base64
import io
import json
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from core.model import DeadLetter, Document, GatewayClaim, Kind, Point, Reason, RegistryActivity, StatusChange
from ingest.routing import DEADLETTERS, DOCUMENTS, REGISTRY, TIMESERIES

VERSION = 2
_V1 = 1  # registry activity as a string-keyed "extra" object
_PICKLE = 0x80  # the first byte of every pickle (protocol >= 2): the format before version 1

Item = Point | Document | StatusChange | DeadLetter
Origin = tuple[str, bytes, float]
Record = tuple[list[Any], list[Origin], RegistryActivity | None]
"""What a writer spools for one batch: its items, the message each came from, its registry activity."""

_TYPES: dict[str, type[Item]] = {
    "point": Point,
    "document": Document,
    "status": StatusChange,
    "dead_letter": DeadLetter,
}
_NAMES: dict[type[Item], str] = {cls: name for name, cls in _TYPES.items()}
_UNSPOOLED = frozenset({"declared"})  # Point.declared: already turned into field_units points when batched
_FIELDS: dict[type[Item], tuple[str, ...]] = {
    cls: tuple(f.name for f in fields(cls) if f.name not in _UNSPOOLED) for cls in _NAMES
}


class RecordError(ValueError):
    """A spool record that this release cannot read (a newer version, or not a spool record)."""


@dataclass(frozen=True, slots=True)
class Holds:
    """What one destination's spool may hold: items of one type, and registry activity or not."""

    item: type[Item]
    activity: bool = False

    def refuses(self, record: Record) -> str | None:
        """Why ``record`` does not belong in this spool (it is another destination's), or None."""
        items, _, activity = record
        wrong = sorted({type(i).__name__ for i in items if not isinstance(i, self.item)})
        if wrong:
            return f"it holds {', '.join(wrong)} items, this spool's are {self.item.__name__}"
        if activity is not None and not self.activity:
            return "it holds registry activity, which only the registry spool does"
        return None


HOLDS: dict[str, Holds] = {
    TIMESERIES: Holds(Point),
    DOCUMENTS: Holds(Document),
    REGISTRY: Holds(StatusChange, activity=True),
    DEADLETTERS: Holds(DeadLetter),
}
"""Each destination's spool, by destination name (``ingest.routing`` puts these items there)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _item(item: Item) -> dict[str, Any]:
    name = _NAMES.get(type(item))
    if name is None:
        raise TypeError(f"cannot spool a {type(item).__name__}")
    out: dict[str, Any] = {"type": name}
    for f in _FIELDS[type(item)]:
        value = getattr(item, f)
        out[f] = _b64(value) if isinstance(value, bytes) else value
    return out


def _from_item(obj: Mapping[str, Any]) -> Item:
    body = dict(obj)
    cls = _TYPES.get(body.pop("type", None))
    if cls is None:
        raise RecordError(f"unknown spooled item type {obj.get('type')!r}")
    if cls is DeadLetter:
        body["payload"] = base64.b64decode(body["payload"])
    return cls(**body)


def _activity(obj: Mapping[str, Any] | None) -> RegistryActivity | None:
    """Registry activity from its JSON object (version 2) or a version 1 / pickled ``extra``."""
    if not obj:
        return None
    return RegistryActivity(
        {str(d): float(t) for d, t in dict(obj.get("last_seen") or {}).items()},
        {str(d): str(t) for d, t in dict(obj.get("register") or {}).items()},
        {str(d): str(v) for d, v in dict(obj.get("firmware") or {}).items()},
        {str(d): str(g) for d, g in dict(obj.get("gateways") or {}).items()},
        [_claim(c) for c in obj.get("claims") or ()],
    )


_CLAIM_FIELDS = tuple(f.name for f in fields(GatewayClaim))


def _claim(obj: Mapping[str, Any]) -> GatewayClaim:
    c = dict(obj)
    registered = c.get("registered")
    return GatewayClaim(
        str(c["device_id"]),
        str(c["via"]),
        None if registered is None else str(registered),
        str(c["topic"]),
        float(c["first_at"]),
        int(c.get("count", 1)),
    )


def encode(items: Sequence[Item], origins: Sequence[Origin], activity: RegistryActivity | None) -> bytes:
    """One record, version byte first."""
    doc = {
        "items": [_item(i) for i in items],
        "origins": [[topic, _b64(payload), at] for topic, payload, at in origins],
        "activity": None
        if activity is None
        else {
            "last_seen": activity.last_seen,
            "register": activity.register,
            "firmware": activity.firmware,
            "gateways": activity.gateways,
            "claims": [{f: getattr(c, f) for f in _CLAIM_FIELDS} for c in activity.claims],
        },
    }
    return bytes([VERSION]) + json.dumps(doc, separators=(",", ":")).encode()


def decode(data: bytes) -> Record:
    """A record in any format this release knows: version 2 or 1, or a pickle from before them."""
    if not data:
        raise RecordError("empty spool record")
    if data[0] == _PICKLE:
        return _from_pickle(data)
    version = data[0]
    if version not in (_V1, VERSION):
        raise RecordError(f"spool record version {version} is not one this release reads (1 to {VERSION})")
    try:
        doc = json.loads(data[1:])
        items = [_from_item(i) for i in doc["items"]]
        origins = [(str(t), base64.b64decode(p), float(at)) for t, p, at in doc["origins"]]
        activity = _activity(doc["extra"] if version == _V1 else doc["activity"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise RecordError(f"unreadable version {version} spool record: {e}") from e
    return items, origins, activity


_LEGACY_CLASSES = {cls.__name__: cls for cls in (Point, Document, StatusChange, DeadLetter, Reason, Kind)}


class _LegacyUnpickler(pickle.Unpickler):
    """Pickles written before version 1 name the model by its old module; nothing else is loaded."""

    def find_class(self, module: str, name: str) -> Any:
        if module in ("ingest.model", "core.model") and name in _LEGACY_CLASSES:
            return _LEGACY_CLASSES[name]
        raise pickle.UnpicklingError(f"spool record refers to {module}.{name}, which is not a spooled type")


def _rebuilt(item: object) -> Item:
    """A fresh instance from an unpickled one: a field added since it was pickled (absent from
    its state) takes its default."""
    cls = type(item)
    if cls not in _FIELDS:
        raise RecordError(f"a pickled spool record holds a {cls.__name__}, not a spooled item")
    return cls(**{f: getattr(item, f) for f in _FIELDS[cls] if hasattr(item, f)})


def _from_pickle(data: bytes) -> Record:
    try:
        items, origins, extra = _LegacyUnpickler(io.BytesIO(data)).load()
        return [_rebuilt(i) for i in items], list(origins), _activity(dict(extra))
    except (pickle.UnpicklingError, ValueError, TypeError, EOFError) as e:
        raise RecordError(f"unreadable pickled spool record: {e}") from e
