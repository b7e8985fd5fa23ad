"""Decode, check against the device directory, and batch per destination (pure: no I/O)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from core.directory import DeviceDirectory
from core.model import (
    COLLECTIONS,
    LETTER_PREFIX_BYTES,
    Bundle,
    DeadLetter,
    Decoded,
    DeviceEntry,
    Document,
    GatewayClaim,
    Kind,
    Point,
    Reason,
    RegistryActivity,
    Rejected,
    StatusChange,
)
from ingest.decoding.field_units import FieldUnitsLog
from ingest.decoding.names import check_tag_value
from ingest.decoding.topics import Topics
from ingest.mqtt.packets import Oversized

Token = int  # an ingest.mqtt.acks.AckTracker sequence number
Origin = tuple[str, bytes, float]  # topic, raw payload, received at (epoch s)
Policy = Literal["accept", "reject", "register"]

TIMESERIES, DOCUMENTS, REGISTRY, DEADLETTERS = "timeseries", "documents", "registry", "deadletters"
DESTINATIONS = (TIMESERIES, DOCUMENTS, REGISTRY, DEADLETTERS)
UNKNOWN_TYPE = "unknown"
"""Type of an auto-registered device. Not written as a tag: a point redelivered after the device
was registered must land in the same series as its first write (idempotent overwrite)."""
FIRMWARE = COLLECTIONS[Kind.FIRMWARE]
_UNSEEN = ""  # a topic whose gateway is not cached yet (no gateway is named "": names are 1-64 chars)
MAX_CACHED_TOPICS = 65536  # topic -> gateway entries kept (then the cache starts over)
MAX_CLAIMS = 1024  # distinct refused (device, gateway) pairs kept per registry batch (then counted only)


class Decodes(Protocol):
    """What the router decodes with (``ingest.decoding.decode.Decoder``): one message at a time, and the
    topic rules it reads sources from (the router files dead letters under ``topics.device_of``)."""

    topics: Topics

    def decode(self, topic: str, payload: bytes, now_ns: int) -> Decoded: ...


@dataclass(slots=True)
class Batch:
    """Items for one destination, the message each came from, and the deliveries it settles.

    A registry batch also carries the :class:`RegistryActivity` gathered since the last one."""

    dest: str
    items: list[Any] = field(default_factory=list)
    origins: list[Origin] = field(default_factory=list)
    tokens: list[Token] = field(default_factory=list)
    created: float = 0.0
    activity: RegistryActivity | None = None
    messages: int = 0
    nbytes: int = 0

    def record(self) -> tuple[list[Any], list[Origin], RegistryActivity | None]:
        """What the spool keeps of it (``ingest.writing.spool_records``)."""
        return (self.items, self.origins, self.activity)


class Router:
    """Turns deliveries into per-destination batches; full or due batches are returned.

    A rejected payload longer than ``max_letter_bytes`` (the payload size limit) is dead-lettered
    as a bounded prefix with its size and hash (:meth:`DeadLetter.bounded`).

    Not thread-safe: the intake calls it under one lock. ``directory`` is read on every
    message; its refresher replaces its entries at any time (never mutates them).
    """

    def __init__(
        self,
        decoder: Decodes,
        *,
        batch_size: int,
        flush_interval: float,
        max_batch_bytes: int = 16 << 20,
        max_letter_bytes: int = 256 * 1024,
        directory: DeviceDirectory | None = None,
        policy: Policy = "accept",
        counts: defaultdict[tuple[str, str], int] | None = None,
    ) -> None:
        self.decode = decoder.decode
        self.topics = decoder.topics
        self.batch_size = batch_size
        self.max_batch_bytes = max_batch_bytes
        self.max_letter_bytes = max_letter_bytes
        self.flush_interval = flush_interval
        self.directory = directory if directory is not None else DeviceDirectory()
        self.policy = policy
        self.counts = counts if counts is not None else defaultdict(int)  # (kind or reason, outcome) -> n
        self._good_tags: set[tuple[str, str]] = set()  # registry tag values already checked
        self.buffers: dict[str, Batch] = {}
        self.last_seen: dict[str, float] = {}
        self.new_devices: dict[str, str] = {}
        self.firmware: dict[str, str] = {}
        self.new_gateways: dict[str, str] = {}  # auto-registered device -> the gateway it came through
        self.claims: dict[tuple[str, str], GatewayClaim] = {}  # (device, via) -> refused claim
        self._learnt: dict[str, str] = {}  # gateways of devices this router registered (until the directory has them)
        self._gateway_of: dict[str, str | None] = {}  # topic -> gateway (cached: topics.gateway_of per topic)
        self._activity_at = 0.0
        self.field_units = FieldUnitsLog()  # declared units recorded once per device, field and day

    def _batch(self, dest: str, now: float) -> Batch:
        b = self.buffers.get(dest)
        if b is None:
            b = self.buffers[dest] = Batch(dest, created=now)
        return b

    def _take(self, dest: str) -> Batch:
        b = self.buffers.pop(dest)
        if dest == REGISTRY:
            claims = list(self.claims.values())
            b.activity = RegistryActivity(self.last_seen, self.new_devices, self.firmware, self.new_gateways, claims)
            self.last_seen, self.new_devices, self.firmware, self.new_gateways, self.claims = {}, {}, {}, {}, {}
        return b

    def dead_letter(self, letter: DeadLetter, token: Token | None, now: float) -> Batch | None:
        self.counts[(letter.reason, "dead_lettered")] += 1
        b = self._batch(DEADLETTERS, now)
        b.items.append(letter)
        b.messages += 1
        b.nbytes += len(letter.payload)
        if token is not None:
            b.tokens.append(token)
        return self._take(DEADLETTERS) if self._full(b) else None

    def reject(self, topic: str, payload: bytes, token: Token | None, now: float, r: Rejected) -> Batch | None:
        """Dead-letter one delivery for ``r`` (bounded, filed under the device its topic names)."""
        letter = DeadLetter.bounded(
            str(r.reason), topic, payload, now, r.detail, self.topics.device_of(topic), limit=self.max_letter_bytes
        )
        return self.dead_letter(letter, token, now)

    def oversized(self, m: Oversized, token: Token | None, now: float) -> Batch | None:
        """Dead-letter a PUBLISH the receive path discarded unread for its size (reason ``oversize``,
        the first bytes of its payload, its size and SHA-256)."""
        keep = min(self.max_letter_bytes, LETTER_PREFIX_BYTES)
        detail = f"{m.size} bytes, over the MQTT packet size limit: discarded while read"
        letter = DeadLetter(
            Reason.OVERSIZE, m.topic, m.prefix[:keep], now, detail, self.topics.device_of(m.topic), m.size, m.sha256
        )
        return self.dead_letter(letter, token, now)

    def _full(self, b: Batch) -> bool:
        """Full by item count, or by raw bytes so a flood of large payloads stays bounded in memory."""
        return len(b.items) >= self.batch_size or b.nbytes >= self.max_batch_bytes

    def handle(self, topic: str, payload: bytes, token: Token | None, now_ns: int) -> Batch | None:
        """Route one delivery; returns a batch that became full, if any."""
        now = now_ns / 1e9
        try:
            decoded = self.decode(topic, payload, now_ns)
            if type(decoded) is Bundle:
                return self._bundle(topic, payload, token, now, decoded)
            points = decoded if type(decoded) is list else None
            device_id = points[0].device_id if points is not None else decoded.device_id  # type: ignore[union-attr]
            info = self.directory.current().get(device_id)
            via = self._gateway_of.get(topic, _UNSEEN)
            if via == _UNSEEN:
                via = self._cache_gateway(topic)
            if via is not None:  # a gateway publishes for it: only for its own devices
                self._check_gateway(device_id, info, via, topic, now)
            if info is None:
                if self.policy == "reject":
                    raise Rejected(Reason.UNKNOWN_DEVICE, f"device {device_id!r} is not registered")
                if self.policy == "register" and device_id not in self.new_devices:
                    self.new_devices[device_id] = UNKNOWN_TYPE
                    if via is not None:
                        self.new_gateways[device_id] = via
                        self._learn(device_id, via)
            else:
                status = info.status
                if status == "disabled":
                    raise Rejected(Reason.DEVICE_DISABLED, f"device {device_id!r} is disabled")
                if status == "retired":
                    raise Rejected(Reason.DEVICE_RETIRED, f"device {device_id!r} is retired")
                if points is not None:  # registry values become tags: never trust them blindly
                    self._check_tags(info.site, info.type)
        except Rejected as r:
            return self.reject(topic, payload, token, now, r)
        self.last_seen[device_id] = now
        origin = (topic, payload, now)
        if points is not None:
            if len(points) > 1 or points[0].declared is not None:  # an accepted message's declared units
                points = self.field_units.add(points)
            if info is not None:
                site, dtype = info.site, info.type
                for p in points:
                    if dtype != UNKNOWN_TYPE:  # a placeholder tag would split the series
                        p.tags["device_type"] = dtype
                    if site:
                        p.tags["site"] = site
            dest = TIMESERIES
            b = self.buffers.get(dest) or self._batch(dest, now)
            if len(points) == 1:
                b.items.append(points[0])
                b.origins.append(origin)
            else:
                b.items.extend(points)
                b.origins.extend([origin] * len(points))
            kind = points[0].measurement
        elif type(decoded) is Document:
            if decoded.collection == FIRMWARE:
                version = decoded.body.get("version")
                if isinstance(version, str) and "fail" not in str(decoded.body.get("status", "")):
                    self.firmware[device_id] = version
            dest = DOCUMENTS
            b = self._batch(dest, now)
            b.items.append(decoded)
            b.origins.append(origin)
            kind = decoded.collection
        else:
            assert isinstance(decoded, StatusChange)
            dest = REGISTRY
            b = self._batch(dest, now)
            b.items.append(decoded)
            b.origins.append(origin)
            kind = "status"
        self.counts[(kind, "received")] += 1
        b.messages += 1
        b.nbytes += len(payload)
        if token is not None:
            b.tokens.append(token)
        if len(b.items) >= self.batch_size or b.nbytes >= self.max_batch_bytes:  # as _full
            return self._take(dest)
        return None

    def _bundle(self, topic: str, payload: bytes, token: Token | None, now: float, bundle: Bundle) -> Batch | None:
        """A message that is readings and status changes at once (a Sparkplug birth or death):
        the directory decides for each device (the whole message is refused when one is); points go
        to the time series, status to the registry. The delivery settles with the last batch it joins."""
        devices = dict.fromkeys([*(p.device_id for p in bundle.points), *(s.device_id for s in bundle.status)])
        current = self.directory.current()
        infos = {}
        via = self._gateway_of.get(topic, _UNSEEN)
        if via == _UNSEEN:
            via = self._cache_gateway(topic)
        try:
            for device_id in devices:
                info = current.get(device_id)
                if via is not None:  # the edge node publishes for its own devices only
                    self._check_gateway(device_id, info, via, topic, now)
                if info is None:
                    if self.policy == "reject":
                        raise Rejected(Reason.UNKNOWN_DEVICE, f"device {device_id!r} is not registered")
                    continue
                if info.status in ("disabled", "retired"):
                    reason = Reason.DEVICE_DISABLED if info.status == "disabled" else Reason.DEVICE_RETIRED
                    raise Rejected(reason, f"device {device_id!r} is {info.status}")
                if bundle.points:
                    self._check_tags(info.site, info.type)
                infos[device_id] = info
        except Rejected as r:
            return self.reject(topic, payload, token, now, r)
        for device_id in devices:
            self.last_seen[device_id] = now
            if device_id not in infos and self.policy == "register" and device_id not in self.new_devices:
                self.new_devices[device_id] = UNKNOWN_TYPE
                if via is not None:
                    self.new_gateways[device_id] = via
                    self._learn(device_id, via)
        origin = (topic, payload, now)
        full: Batch | None = None
        parts: list[tuple[str, list[Any]]] = [(TIMESERIES, list(bundle.points)), (REGISTRY, list(bundle.status))]
        parts = [(dest, items) for dest, items in parts if items]
        for p in bundle.points:
            found = infos.get(p.device_id)
            if found is not None:
                if found.type != UNKNOWN_TYPE:
                    p.tags["device_type"] = found.type
                if found.site:
                    p.tags["site"] = found.site
        self.counts[("sparkplug", "received")] += 1
        for i, (dest, items) in enumerate(parts):
            b = self._batch(dest, now)
            b.items.extend(items)
            b.origins.extend([origin] * len(items))
            b.messages += 1
            b.nbytes += len(payload)
            if token is not None and i == len(parts) - 1:
                b.tokens.append(token)
            if full is None and self._full(b):  # a second full one goes with its next item or when due
                full = self._take(dest)
        if not parts and token is not None:  # nothing to store (a stale death, only nulls): settled now
            b = self._batch(REGISTRY, now)
            b.tokens.append(token)
        return full

    def _cache_gateway(self, topic: str) -> str | None:
        if len(self._gateway_of) >= MAX_CACHED_TOPICS:
            self._gateway_of.clear()
        via = self._gateway_of[topic] = self.topics.gateway_of(topic)
        return via

    def _learn(self, device_id: str, via: str) -> None:
        if len(self._learnt) >= MAX_CACHED_TOPICS:
            self._learnt.clear()
        self._learnt[device_id] = via

    def _check_gateway(self, device_id: str, info: DeviceEntry | None, via: str, topic: str, now: float) -> None:
        """Rejected(WRONG_GATEWAY), with a claim for the audit trail, unless ``device_id`` sits behind
        ``via``: registered there, or (unknown) first seen through it by this router."""
        if info is not None:
            registered = info.gateway
        elif self.policy == "register":
            registered = self._learnt.get(device_id, via)
        else:  # not registered: the unknown-device policy decides
            return
        if registered == via:
            return
        claim = self.claims.get((device_id, via))
        if claim is not None:
            self.claims[(device_id, via)] = replace(claim, count=claim.count + 1)
        elif len(self.claims) < MAX_CLAIMS:
            self.claims[(device_id, via)] = GatewayClaim(device_id, via, registered, topic[:256], now)
        where = f"behind gateway {registered!r}" if registered is not None else "publishing for itself"
        raise Rejected(Reason.WRONG_GATEWAY, f"device {device_id!r} is {where}, not behind gateway {via!r}")

    def _check_tags(self, site: str | None, dtype: str) -> None:
        """The device's site and type may be written as tags (checked once per value)."""
        if (site or "", dtype) in self._good_tags:
            return
        if site:
            check_tag_value("site", site)
        if dtype != UNKNOWN_TYPE:
            check_tag_value("device_type", dtype)
        if len(self._good_tags) >= 65536:
            self._good_tags.clear()
        self._good_tags.add((site or "", dtype))

    def due(self, now: float) -> list[Batch]:
        """Batches older than the flush interval; last-seen goes out once per interval."""
        pending = self.last_seen or self.new_devices or self.firmware or self.claims
        if pending and now - self._activity_at >= self.flush_interval:
            b = self._batch(REGISTRY, now)
            b.created = min(b.created, now - self.flush_interval)
            self._activity_at = now
        return [self._take(d) for d, b in list(self.buffers.items()) if now - b.created >= self.flush_interval]

    def take_all(self) -> list[Batch]:
        """Every batch buffered now (registry updates keep their own interval)."""
        return [self._take(d) for d in list(self.buffers) if d != REGISTRY]

    def drain(self) -> list[Batch]:
        """Everything buffered, for shutdown."""
        if self.last_seen or self.new_devices or self.firmware or self.claims:
            self._batch(REGISTRY, 0.0)
        return [self._take(d) for d in list(self.buffers)]


def rejected_letters(batch: Batch, refused: list[tuple[int, str]]) -> list[DeadLetter]:
    """Dead letters for the items a store refused (by index into ``batch.items``), one per source
    message (raw bytes kept)."""
    seen: set[tuple[str, bytes, float]] = set()
    letters: list[DeadLetter] = []
    for i, reason in refused:
        if not 0 <= i < min(len(batch.items), len(batch.origins)):
            continue
        item, origin = batch.items[i], batch.origins[i]
        if origin in seen:
            continue
        seen.add(origin)
        device_id = getattr(item, "device_id", None)
        detail = reason if not isinstance(item, Point) else f"{reason} (point {item.fields!r})"[:2000]
        letters.append(DeadLetter(str(Reason.STORE_REJECTED), origin[0], origin[1], origin[2], detail, device_id))
    return letters
